//! placeholder
pub struct IngestCounters;
pub async fn serve() {}
