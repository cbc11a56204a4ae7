//! Quality evaluations on public labelled data: NAB for anomaly detection,
//! Loghub for log parsing. Each produces a report that `vigie eval` prints
//! as a table or JSON.

pub mod loghub;
pub mod nab;
