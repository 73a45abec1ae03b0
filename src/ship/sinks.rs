//! The sink a shipper uses, chosen from the configuration: the list sink (one server, one
//! shard, no `WAIT`: the seed's setup) or the script sink (streams, shards, a cluster,
//! replicated acknowledgements).

use super::redis_list::{RedisList, SinkError};
use super::script::{ScriptSink, ScriptSinkError};
use crate::log::Batch;

// One per shipper: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AnySink {
    List(RedisList),
    Script(ScriptSink),
}

#[derive(Debug, thiserror::Error)]
pub enum AnySinkError {
    #[error(transparent)]
    List(#[from] SinkError),
    #[error(transparent)]
    Script(#[from] ScriptSinkError),
}

impl AnySinkError {
    pub fn is_refusal(&self) -> bool {
        match self {
            AnySinkError::List(e) => e.is_refusal(),
            AnySinkError::Script(e) => e.is_refusal(),
        }
    }
}

impl AnySink {
    pub fn is_connected(&self) -> bool {
        match self {
            AnySink::List(s) => s.is_connected(),
            AnySink::Script(s) => s.is_connected(),
        }
    }

    pub async fn connect(&mut self) -> Result<u64, AnySinkError> {
        Ok(match self {
            AnySink::List(s) => s.connect().await?,
            AnySink::Script(s) => s.connect().await?,
        })
    }

    pub fn disconnect(&mut self) {
        match self {
            AnySink::List(s) => s.disconnect(),
            AnySink::Script(s) => s.disconnect(),
        }
    }

    pub async fn ship(&mut self, batch: &Batch) -> Result<(), AnySinkError> {
        match self {
            AnySink::List(s) => s.ship(batch).await?,
            AnySink::Script(s) => s.ship(batch).await?,
        }
        Ok(())
    }
}
