//! Message codecs: Arrow IPC for record batches, JSON for alerts and
//! notification log entries.

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;

use crate::{Alert, ModelError, NotificationLogEntry};

/// Encodes one record batch as an Arrow IPC stream (schema + batch).
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, ModelError> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() + 512);
    {
        let mut writer = StreamWriter::try_new(&mut buf, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(buf)
}

/// Decodes an Arrow IPC stream into its batches, concatenated into one.
///
/// Never panics on garbage, and never allocates more than the payload's
/// size on the strength of a length field inside it (the push decoder only
/// looks at bytes that are there): any malformed input is an error.
pub fn decode_batch(payload: &[u8]) -> Result<RecordBatch, ModelError> {
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from(payload);
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        let before = buffer.len();
        if let Some(batch) = decoder.decode(&mut buffer)? {
            batches.push(batch);
        }
        if buffer.len() == before {
            break;
        }
    }
    decoder.finish()?;
    let schema = decoder.schema().ok_or(ModelError::Empty)?;
    match batches.len() {
        0 => Err(ModelError::Empty),
        1 => Ok(batches.remove(0)),
        _ => Ok(arrow::compute::concat_batches(&schema, &batches)?),
    }
}

/// Encodes an alert as JSON.
pub fn encode_alert(alert: &Alert) -> Result<Vec<u8>, ModelError> {
    Ok(serde_json::to_vec(alert)?)
}

/// Decodes an alert from JSON.
pub fn decode_alert(payload: &[u8]) -> Result<Alert, ModelError> {
    Ok(serde_json::from_slice(payload)?)
}

/// Encodes a notification log entry (`vigie.nflog`) as JSON.
pub fn encode_nflog(entry: &NotificationLogEntry) -> Result<Vec<u8>, ModelError> {
    Ok(serde_json::to_vec(entry)?)
}

/// Decodes a notification log entry from JSON.
pub fn decode_nflog(payload: &[u8]) -> Result<NotificationLogEntry, ModelError> {
    Ok(serde_json::from_slice(payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{batch_to_samples, samples_to_batch};
    use crate::{Labels, Sample};
    use proptest::prelude::*;

    #[test]
    fn batch_round_trip() {
        let samples = vec![Sample::new("up", Labels::new().with("job", "x"), 5, 1.0)];
        let batch = samples_to_batch(&samples).expect("batch");
        let bytes = encode_batch(&batch).expect("encode");
        let back = decode_batch(&bytes).expect("decode");
        assert_eq!(batch_to_samples(&back).expect("samples"), samples);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_batch(&bytes);
        }

        #[test]
        fn truncated_payload_is_an_error(cut in 1usize..64) {
            let samples = vec![Sample::new("up", Labels::new(), 5, 1.0)];
            let bytes = encode_batch(&samples_to_batch(&samples).expect("batch")).expect("encode");
            // The stream ends in an 8-byte end-of-stream marker that is
            // optional: dropping it whole leaves a valid stream.
            prop_assume!(cut != 8);
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(decode_batch(&bytes[..bytes.len() - cut]).is_err());
        }

        #[test]
        fn samples_round_trip(
            rows in proptest::collection::vec(("[a-z_]{1,12}", "[a-z]{0,6}", any::<i64>(), -1e12f64..1e12), 1..40)
        ) {
            let samples: Vec<Sample> = rows
                .iter()
                .map(|(m, j, t, v)| Sample::new(m.clone(), Labels::new().with("job", j.clone()), *t, *v))
                .collect();
            let bytes = encode_batch(&samples_to_batch(&samples).expect("batch")).expect("encode");
            let back = batch_to_samples(&decode_batch(&bytes).expect("decode")).expect("samples");
            prop_assert_eq!(back, samples);
        }
    }
}
