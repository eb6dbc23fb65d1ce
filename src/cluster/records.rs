//! Metadata records: the values of the KRaft metadata log's data records, decoded from their
//! published schemas (`metadata/src/main/resources/common/metadata/*.json`, Kafka 4.4).
//!
//! Owns the envelope and the flexible (KIP-482) field encoding, for the records logferry needs
//! (`docs/cluster-and-security.md` §2–3). kafka-protocol has no types for them. A record type or
//! version not listed here decodes to [`MetadataRecord::Unknown`] (the caller skips and counts
//! it); a known one that does not parse is a [`DecodeError`], never a panic.
//!
//! ```text
//! value:   frame_version uvarint (= 1) | api_key uvarint | version uvarint | body
//! body:    fields in schema order (those of this version) | tagged fields
//! tagged:  count uvarint | (tag uvarint | size uvarint | bytes[size])*
//! string:  uvarint (length + 1; 0 = null) | UTF-8
//! array:   uvarint (count + 1; 0 = null) | elements
//! uuid:    16 bytes;  bool: 1 byte;  uint16/int16/int32/int64: big-endian
//! ```

use crate::log::meta::Uuid;

/// Why a record could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the field named.
    Truncated(&'static str),
    /// A length or value the schema does not allow.
    Invalid(&'static str),
    /// The envelope's frame version is not 1.
    FrameVersion(u64),
    /// Bytes left after the body.
    Trailing(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "record ends inside {what}"),
            Self::Invalid(what) => write!(f, "invalid {what}"),
            Self::FrameVersion(v) => write!(f, "metadata frame version {v} (only 1 is defined)"),
            Self::Trailing(n) => write!(f, "{n} bytes after the record body"),
        }
    }
}

/// A listener a broker registered (its advertised endpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: i16,
}

/// One decoded metadata record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker {
        broker_id: i32,
        broker_epoch: i64,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        fenced: bool,
        in_controlled_shutdown: bool,
    },
    UnregisterBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    /// BrokerRegistrationChangeRecord; also FenceBroker (fenced 1) and UnfenceBroker (−1).
    BrokerChange {
        broker_id: i32,
        broker_epoch: i64,
        /// −1 unfenced, 0 no change, 1 fenced.
        fenced: i8,
        /// 0 no change, 1 in controlled shutdown.
        in_controlled_shutdown: i8,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    Partition(PartitionRecord),
    PartitionChange(PartitionChange),
    Config {
        resource_type: i8,
        resource_name: String,
        name: String,
        /// `None` deletes the key.
        value: Option<String>,
    },
    UserScramCredential {
        name: String,
        mechanism: i8,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    RemoveUserScramCredential {
        name: String,
        mechanism: i8,
    },
    AccessControlEntry(AclEntry),
    RemoveAccessControlEntry {
        id: Uuid,
    },
    FeatureLevel {
        name: String,
        level: i16,
    },
    BeginTransaction,
    EndTransaction,
    AbortTransaction,
    /// ClearElrRecord (28): the ELRs of one topic (by name), or of all for "".
    ClearElr {
        topic_name: String,
    },
    /// NoOp, ProducerIds, ZkMigrationState, controller registrations, quotas,
    /// delegation tokens: known, and of no use to a read replica.
    Ignored(u16),
    /// A record type or version this build does not know.
    Unknown {
        api_key: u64,
        version: u64,
    },
}

/// PartitionRecord (3): the full registration of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// KIP-966 (v2+, tags 1 and 2): replicas that may lead though out of the ISR, and the last
    /// ones known; absent (ELR disabled) reads as empty, as the broker's registration has it.
    pub elr: Vec<i32>,
    pub last_known_elr: Vec<i32>,
}

/// PartitionChangeRecord (5): a delta; `None` (and leader −2) means unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PartitionChange {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub isr: Option<Vec<i32>>,
    /// −2 no change, −1 no leader, else the new leader.
    pub leader: i32,
    pub replicas: Option<Vec<i32>>,
    /// Tags 6 and 7 (v2+).
    pub elr: Option<Vec<i32>>,
    pub last_known_elr: Option<Vec<i32>>,
}

/// `PartitionChangeRecord.Leader` default: the leader did not change.
pub const NO_LEADER_CHANGE: i32 = -2;

/// AccessControlEntryRecord (18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclEntry {
    pub id: Uuid,
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Invalid(what))?;
        let s = self.b.get(self.at..end).ok_or(DecodeError::Truncated(what))?;
        self.at = end;
        Ok(s)
    }

    fn uvarint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1, what)?[0];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Invalid(what))
    }

    fn i8(&mut self, what: &'static str) -> Result<i8, DecodeError> {
        Ok(self.take(1, what)?[0] as i8)
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.take(1, what)?[0] != 0)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        let s = self.take(2, what)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let s = self.take(4, what)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(i64::from_be_bytes(a))
    }

    fn uuid(&mut self, what: &'static str) -> Result<Uuid, DecodeError> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16, what)?);
        Ok(a)
    }

    /// Compact length: `None` for null.
    fn compact_len(&mut self, what: &'static str) -> Result<Option<usize>, DecodeError> {
        match self.uvarint(what)? {
            0 => Ok(None),
            n => {
                let n = usize::try_from(n - 1).map_err(|_| DecodeError::Invalid(what))?;
                // No element is smaller than a byte: a count beyond the bytes left is corrupt.
                if n > self.b.len() - self.at {
                    return Err(DecodeError::Invalid(what));
                }
                Ok(Some(n))
            }
        }
    }

    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        match self.compact_len(what)? {
            None => Ok(None),
            Some(n) => {
                let s = self.take(n, what)?;
                Ok(Some(String::from_utf8(s.to_vec()).map_err(|_| DecodeError::Invalid(what))?))
            }
        }
    }

    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        self.nullable_string(what)?.ok_or(DecodeError::Invalid(what))
    }

    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        match self.compact_len(what)? {
            None => Err(DecodeError::Invalid(what)),
            Some(n) => Ok(self.take(n, what)?.to_vec()),
        }
    }

    fn nullable_i32s(&mut self, what: &'static str) -> Result<Option<Vec<i32>>, DecodeError> {
        match self.compact_len(what)? {
            None => Ok(None),
            Some(n) => (0..n).map(|_| self.i32(what)).collect::<Result<Vec<_>, _>>().map(Some),
        }
    }

    fn i32s(&mut self, what: &'static str) -> Result<Vec<i32>, DecodeError> {
        self.nullable_i32s(what)?.ok_or(DecodeError::Invalid(what))
    }

    fn uuids(&mut self, what: &'static str) -> Result<(), DecodeError> {
        if let Some(n) = self.compact_len(what)? {
            self.take(n.checked_mul(16).ok_or(DecodeError::Invalid(what))?, what)?;
        }
        Ok(())
    }

    /// Calls `each(tag, reader over its bytes)` for every tagged field of a struct.
    fn tagged(
        &mut self,
        mut each: impl FnMut(u64, &mut Reader<'a>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = usize::try_from(self.uvarint("tag size")?).map_err(|_| DecodeError::Invalid("tag size"))?;
            let bytes = self.take(size, "tagged field")?;
            let mut sub = Reader { b: bytes, at: 0 };
            each(tag, &mut sub)?;
        }
        Ok(())
    }

    fn skip_tagged(&mut self) -> Result<(), DecodeError> {
        self.tagged(|_, _| Ok(()))
    }
}

/// Highest version of each record type this build decodes (`validVersions` in Kafka 4.4).
fn known_version(api_key: u64) -> Option<u64> {
    Some(match api_key {
        0 => 4,
        3 | 5 => 2,
        17 => 3,
        1 | 2 | 4 | 7 | 8 | 9 | 11 | 12 | 18 | 19 | 22 | 23 | 24 | 25 => 0,
        28 => 0,
        10 | 14 | 15 | 20 | 21 | 26 | 27 | 29 => u64::MAX,
        _ => return None,
    })
}

/// Decodes one data record's value.
pub fn decode(value: &[u8]) -> Result<MetadataRecord, DecodeError> {
    let mut r = Reader { b: value, at: 0 };
    let frame = r.uvarint("frame version")?;
    if frame != 1 {
        return Err(DecodeError::FrameVersion(frame));
    }
    let api_key = r.uvarint("api key")?;
    let version = r.uvarint("version")?;
    match known_version(api_key) {
        Some(max) if version <= max => {}
        _ => return Ok(MetadataRecord::Unknown { api_key, version }),
    }
    let rec = body(&mut r, api_key, version)?;
    if matches!(rec, MetadataRecord::Ignored(_)) {
        return Ok(rec);
    }
    if r.at != value.len() {
        return Err(DecodeError::Trailing(value.len() - r.at));
    }
    Ok(rec)
}

fn body(r: &mut Reader<'_>, api_key: u64, version: u64) -> Result<MetadataRecord, DecodeError> {
    use MetadataRecord as M;
    Ok(match api_key {
        0 => {
            let broker_id = r.i32("BrokerId")?;
            if version >= 2 {
                r.bool("IsMigratingZkBroker")?;
            }
            r.uuid("IncarnationId")?;
            let broker_epoch = r.i64("BrokerEpoch")?;
            let n = r.compact_len("EndPoints")?.ok_or(DecodeError::Invalid("EndPoints"))?;
            let mut endpoints = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.string("EndPoints.Name")?;
                let host = r.string("EndPoints.Host")?;
                let port = r.u16("EndPoints.Port")?;
                let security_protocol = r.i16("EndPoints.SecurityProtocol")?;
                r.skip_tagged()?;
                endpoints.push(Endpoint { name, host, port, security_protocol });
            }
            let n = r.compact_len("Features")?.ok_or(DecodeError::Invalid("Features"))?;
            for _ in 0..n {
                r.string("Features.Name")?;
                r.i16("Features.MinSupportedVersion")?;
                r.i16("Features.MaxSupportedVersion")?;
                r.skip_tagged()?;
            }
            let rack = r.nullable_string("Rack")?;
            let fenced = r.bool("Fenced")?;
            let in_controlled_shutdown = if version >= 1 { r.bool("InControlledShutdown")? } else { false };
            r.skip_tagged()?;
            M::RegisterBroker { broker_id, broker_epoch, endpoints, rack, fenced, in_controlled_shutdown }
        }
        1 => {
            let broker_id = r.i32("BrokerId")?;
            let broker_epoch = r.i64("BrokerEpoch")?;
            r.skip_tagged()?;
            M::UnregisterBroker { broker_id, broker_epoch }
        }
        2 => {
            let name = r.string("Name")?;
            let topic_id = r.uuid("TopicId")?;
            r.skip_tagged()?;
            M::Topic { name, topic_id }
        }
        3 => {
            let partition_id = r.i32("PartitionId")?;
            let topic_id = r.uuid("TopicId")?;
            let replicas = r.i32s("Replicas")?;
            let isr = r.i32s("Isr")?;
            r.nullable_i32s("RemovingReplicas")?;
            r.nullable_i32s("AddingReplicas")?;
            let leader = r.i32("Leader")?;
            let leader_epoch = r.i32("LeaderEpoch")?;
            let partition_epoch = r.i32("PartitionEpoch")?;
            if version >= 1 {
                r.uuids("Directories")?;
            }
            let (mut elr, mut last_known_elr) = (Vec::new(), Vec::new());
            r.tagged(|tag, t| {
                match tag {
                    1 => elr = t.nullable_i32s("EligibleLeaderReplicas")?.unwrap_or_default(),
                    2 => last_known_elr = t.nullable_i32s("LastKnownElr")?.unwrap_or_default(),
                    _ => {}
                }
                Ok(())
            })?;
            M::Partition(PartitionRecord {
                partition_id,
                topic_id,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                elr,
                last_known_elr,
            })
        }
        4 => {
            let resource_type = r.i8("ResourceType")?;
            let resource_name = r.string("ResourceName")?;
            let name = r.string("Name")?;
            let value = r.nullable_string("Value")?;
            r.skip_tagged()?;
            M::Config { resource_type, resource_name, name, value }
        }
        5 => {
            let partition_id = r.i32("PartitionId")?;
            let topic_id = r.uuid("TopicId")?;
            let mut c = PartitionChange { partition_id, topic_id, leader: NO_LEADER_CHANGE, ..Default::default() };
            r.tagged(|tag, t| {
                match tag {
                    0 => c.isr = t.nullable_i32s("Isr")?,
                    1 => c.leader = t.i32("Leader")?,
                    2 => c.replicas = t.nullable_i32s("Replicas")?,
                    6 => c.elr = t.nullable_i32s("EligibleLeaderReplicas")?,
                    7 => c.last_known_elr = t.nullable_i32s("LastKnownElr")?,
                    _ => {}
                }
                Ok(())
            })?;
            M::PartitionChange(c)
        }
        7 | 8 => {
            let broker_id = r.i32("Id")?;
            let broker_epoch = r.i64("Epoch")?;
            r.skip_tagged()?;
            let fenced = if api_key == 7 { 1 } else { -1 };
            M::BrokerChange { broker_id, broker_epoch, fenced, in_controlled_shutdown: 0 }
        }
        9 => {
            let topic_id = r.uuid("TopicId")?;
            r.skip_tagged()?;
            M::RemoveTopic { topic_id }
        }
        11 => {
            let name = r.string("Name")?;
            let mechanism = r.i8("Mechanism")?;
            let salt = r.bytes("Salt")?;
            let stored_key = r.bytes("StoredKey")?;
            let server_key = r.bytes("ServerKey")?;
            let iterations = r.i32("Iterations")?;
            r.skip_tagged()?;
            M::UserScramCredential { name, mechanism, salt, stored_key, server_key, iterations }
        }
        12 => {
            let name = r.string("Name")?;
            let level = r.i16("FeatureLevel")?;
            r.skip_tagged()?;
            M::FeatureLevel { name, level }
        }
        17 => {
            let broker_id = r.i32("BrokerId")?;
            let broker_epoch = r.i64("BrokerEpoch")?;
            let (mut fenced, mut in_controlled_shutdown) = (0i8, 0i8);
            r.tagged(|tag, t| {
                match tag {
                    0 => fenced = t.i8("Fenced")?,
                    1 => in_controlled_shutdown = t.i8("InControlledShutdown")?,
                    _ => {}
                }
                Ok(())
            })?;
            M::BrokerChange { broker_id, broker_epoch, fenced, in_controlled_shutdown }
        }
        18 => {
            let id = r.uuid("Id")?;
            let resource_type = r.i8("ResourceType")?;
            let resource_name = r.string("ResourceName")?;
            let pattern_type = r.i8("PatternType")?;
            let principal = r.string("Principal")?;
            let host = r.string("Host")?;
            let operation = r.i8("Operation")?;
            let permission_type = r.i8("PermissionType")?;
            r.skip_tagged()?;
            M::AccessControlEntry(AclEntry {
                id,
                resource_type,
                resource_name,
                pattern_type,
                principal,
                host,
                operation,
                permission_type,
            })
        }
        19 => {
            let id = r.uuid("Id")?;
            r.skip_tagged()?;
            M::RemoveAccessControlEntry { id }
        }
        22 => {
            let name = r.string("Name")?;
            let mechanism = r.i8("Mechanism")?;
            r.skip_tagged()?;
            M::RemoveUserScramCredential { name, mechanism }
        }
        23..=25 => {
            r.skip_tagged()?;
            match api_key {
                23 => M::BeginTransaction,
                24 => M::EndTransaction,
                _ => M::AbortTransaction,
            }
        }
        28 => {
            let topic_name = r.string("TopicName")?;
            r.skip_tagged()?;
            M::ClearElr { topic_name }
        }
        other => M::Ignored(other as u16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    #[test]
    fn partition_change_defaults_and_tags() {
        let mut v = vec![1, 5, 0];
        v.extend_from_slice(&7i32.to_be_bytes());
        v.extend_from_slice(&[9u8; 16]);
        // two tagged fields: Isr [2, 3] and Leader 3
        uvarint(&mut v, 2);
        let mut isr = vec![3u8];
        isr.extend_from_slice(&2i32.to_be_bytes());
        isr.extend_from_slice(&3i32.to_be_bytes());
        uvarint(&mut v, 0);
        uvarint(&mut v, isr.len() as u64);
        v.extend_from_slice(&isr);
        uvarint(&mut v, 1);
        uvarint(&mut v, 4);
        v.extend_from_slice(&3i32.to_be_bytes());
        let MetadataRecord::PartitionChange(c) = decode(&v).unwrap() else { panic!("not a change") };
        assert_eq!((c.partition_id, c.leader, c.isr, c.replicas), (7, 3, Some(vec![2, 3]), None));
        // no tags at all: leader unchanged
        let mut w = v[..3 + 4 + 16].to_vec();
        w.push(0);
        let MetadataRecord::PartitionChange(c) = decode(&w).unwrap() else { panic!("not a change") };
        assert_eq!(c.leader, NO_LEADER_CHANGE);
    }

    #[test]
    fn unknown_versions_and_types_are_values_and_garbage_is_an_error() {
        assert_eq!(decode(&[1, 3, 9, 0]).unwrap(), MetadataRecord::Unknown { api_key: 3, version: 9 });
        assert_eq!(decode(&[1, 99, 0]).unwrap(), MetadataRecord::Unknown { api_key: 99, version: 0 });
        assert_eq!(decode(&[0, 2, 0]), Err(DecodeError::FrameVersion(0)));
        // TopicRecord whose name length runs past the end
        assert!(decode(&[1, 2, 0, 200, 1, b'a']).is_err());
        // a huge array count must not allocate
        assert!(decode(&[1, 3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f])
            .is_err());
        // trailing bytes
        let mut t = vec![1, 9, 0];
        t.extend_from_slice(&[1u8; 16]);
        t.extend_from_slice(&[0, 0]);
        assert_eq!(decode(&t), Err(DecodeError::Trailing(1)));
        // truncated input of every length never panics
        for n in 0..t.len() {
            let _ = decode(&t[..n]);
        }
    }
}
