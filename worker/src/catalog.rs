//! Function metadata, resolved from the database once and cached: functions are
//! immutable after creation, so a cached entry never goes stale (a deleted
//! function only keeps running instances it already has).

use std::collections::HashMap;
use std::sync::Mutex;

use database::{ClientError, DatabaseClient, Function};
use hyperfake_core::FunctionId;

#[derive(Debug)]
pub struct FunctionCatalog {
    database: DatabaseClient,
    cache: Mutex<HashMap<FunctionId, Function>>,
}

impl FunctionCatalog {
    pub fn new(database: DatabaseClient) -> Self {
        FunctionCatalog { database, cache: Mutex::new(HashMap::new()) }
    }

    pub async fn get(&self, id: &FunctionId) -> Result<Function, ClientError> {
        if let Some(f) = self.lock().get(id) {
            return Ok(f.clone());
        }
        let function = self.database.get(id).await?;
        self.lock().insert(id.clone(), function.clone());
        Ok(function)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FunctionId, Function>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
