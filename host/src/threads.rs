//! Tokio runtimes on threads of their own: plugin work and deliveries run apart from the
//! threads that serve ingest and the API, and plugins under suspicion at the lowest OS
//! priority, so that neither can starve the other.

/// A multi-threaded tokio runtime owned by a thread of its own. Dropping it (even inside
/// another runtime's task, where a runtime may not be dropped) lets that thread end and
/// drop the runtime there.
pub struct Threads {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Threads {
    /// `threads` workers named `name`; `nice` sets their OS priority (Linux: per thread;
    /// 19 is the lowest) where the system allows it.
    pub fn start(name: &str, threads: usize, nice: Option<i32>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .on_thread_start(move || {
                if let Some(nice) = nice {
                    // Refused without privileges only when raising priority; lowering it is allowed.
                    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice);
                }
            })
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new().name(format!("{name}-owner")).spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(Threads { handle, _stop: stop })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_named_threads_and_dropping_inside_a_runtime_is_fine() {
        let threads = Threads::start("wasmhook-test-lane", 1, Some(19)).unwrap();
        let name = threads.handle().spawn(async { std::thread::current().name().map(str::to_owned) });
        assert_eq!(name.await.unwrap().as_deref(), Some("wasmhook-test-lane"));
        let nice = threads
            .handle()
            .spawn(async { rustix::process::getpriority_process(Some(rustix::thread::gettid())) });
        assert_eq!(nice.await.unwrap().unwrap(), 19, "the lane's threads run at the lowest priority");
        drop(threads);
    }
}
