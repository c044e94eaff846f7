//! The one shared wasmtime `Engine`: component model, epoch interruption, pooling allocator,
//! and the thread that advances its epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::Limits;

/// How often the epoch advances: the granularity of CPU deadlines and of yielding to the
/// async executor while a plugin computes.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Table elements one table may hold; the JavaScript and Python runtimes need about 20,000.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 50_000;

/// Builds the engine. `max_instances` bounds component instances alive at once (pooled idle
/// ones plus running ones); the pool reserves address space for that many up front.
pub(crate) fn build(limits: &Limits, max_instances: u32) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances.saturating_mul(16))
        .max_core_instances_per_component(64)
        .total_memories(max_instances.saturating_mul(2))
        .max_memories_per_component(8)
        .max_memory_size(limits.memory_bytes)
        .total_tables(max_instances.saturating_mul(4))
        .max_tables_per_component(16)
        .max_tables_per_module(4)
        .table_elements(MAX_TABLE_ELEMENTS)
        .total_stacks(max_instances);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasmhook-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread (out of threads?)");
        EpochTicker { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
