//! An endpoint's depth by bucket, from the counts each partition keeps.

use super::*;

impl RedisQueue {
    pub(super) async fn depth_in(&self, partition: &Partition) -> Result<Vec<Depth>, StoreError> {
        let keys = [
            partition.key("counts"),
            partition.key("counted"),
            partition.key("all"),
        ];
        let rows: Vec<(String, String, i64, String)> = self
            .store
            .run(|mut c| async move {
                let mut call = self.scripts.depth.prepare_invoke();
                for key in &keys {
                    call.key(key);
                }
                call.arg(&partition.base).invoke_async(&mut c).await
            })
            .await?;
        let mut depths: Vec<Depth> = Vec::new();
        for (endpoint, bucket, count, oldest) in rows {
            let Some(bucket) = Bucket::parse(&bucket) else {
                return Err(corrupt("depth bucket", format_args!("{bucket:?}")));
            };
            let index = match depths.iter().position(|d| d.endpoint == endpoint) {
                Some(index) => index,
                None => {
                    let oldest = match oldest.as_str() {
                        "" => None,
                        ms => Some(ms.parse().map_err(|e| corrupt("accept time", e))?),
                    };
                    depths.push(Depth {
                        endpoint,
                        oldest_waiting_ms: oldest,
                        ..Depth::default()
                    });
                    depths.len() - 1
                }
            };
            *depths[index].count_mut(bucket) = count.max(0) as u64;
        }
        Ok(depths)
    }
}
