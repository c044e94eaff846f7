//! Group commit's common shape: concurrent calls hand their work to one task, which writes
//! everything waiting as one group and lets each call hear its own answer.
//!
//! While a group is written the next one gathers, so under load a group holds what arrived
//! during one write, and a write's fixed cost (a round trip, a log flush) is paid once per
//! group instead of once per call. A lone call is written at once: grouping never waits.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

/// How groups are formed and written.
pub(crate) trait Grouping: Send + Sync + 'static {
    type Item: Send + 'static;

    /// The most a group may hold, in [`Grouping::weight`].
    const MAX_WEIGHT: usize;
    /// Groups written at the same time (their order is then not kept).
    const AT_ONCE: usize = 1;
    /// Whether a group, before it is written, lets the tasks ready to run go first, for as
    /// long as they bring more items: calls on their way (on a busy machine, waiting for a
    /// core) join this group instead of opening the next. No timer: when nothing is ready,
    /// or what ran brought nothing, the group is written at once.
    const LINGER: bool = false;

    /// An item's share of a group (events, rows…).
    fn weight(_item: &Self::Item) -> usize {
        1
    }

    /// Items with the same key never share a group: the later one opens the next.
    fn key(_item: &Self::Item) -> Option<&str> {
        None
    }

    /// Writes a group and answers each item's caller.
    fn write(&self, group: Vec<Self::Item>) -> impl Future<Output = ()> + Send;
}

enum Message<T> {
    Item(T),
    Stop,
}

/// Hands items to the grouping task.
pub(crate) struct Groups<T>(mpsc::UnboundedSender<Message<T>>);

impl<T: Send + 'static> Groups<T> {
    /// Starts the task on the current runtime.
    pub(crate) fn start<G: Grouping<Item = T>>(grouping: G) -> (Groups<T>, JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Groups(sender), tokio::spawn(run(Arc::new(grouping), receiver)))
    }

    /// Hands `item` over; gives it back when the task has ended.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        self.0.send(Message::Item(item)).map_err(|error| match error.0 {
            Message::Item(item) => item,
            Message::Stop => unreachable!("only items are sent here"),
        })
    }

    /// Ends the task once the items handed over before are written.
    pub(crate) fn stop(&self) {
        let _ = self.0.send(Message::Stop);
    }
}

async fn run<G: Grouping>(grouping: Arc<G>, mut receiver: mpsc::UnboundedReceiver<Message<G::Item>>) {
    let writers = Arc::new(Semaphore::new(G::AT_ONCE));
    // An item that did not join the last group opens the next.
    let mut held: Option<G::Item> = None;
    let mut stopping = false;
    loop {
        // A free writer first, then the group: items arriving meanwhile join it.
        let Ok(writer) = writers.clone().acquire_owned().await else { return };
        let first = match held.take() {
            Some(item) => item,
            None if stopping => break,
            None => match receiver.recv().await {
                Some(Message::Item(item)) => item,
                Some(Message::Stop) | None => break,
            },
        };
        let mut weight = G::weight(&first);
        let mut keys: HashSet<String> = G::key(&first).map(str::to_owned).into_iter().collect();
        let mut group = vec![first];
        let mut lingered = false;
        while weight < G::MAX_WEIGHT && !stopping {
            let next = match receiver.try_recv() {
                Err(mpsc::error::TryRecvError::Empty) if G::LINGER && !lingered => {
                    tokio::task::yield_now().await;
                    // Once more only if the tasks that ran brought something.
                    match receiver.try_recv() {
                        Ok(item) => Ok(item),
                        Err(_) => {
                            lingered = true;
                            continue;
                        }
                    }
                }
                next => next,
            };
            match next {
                Ok(Message::Item(item)) => {
                    if G::key(&item).is_some_and(|key| !keys.insert(key.to_owned())) {
                        held = Some(item);
                        break;
                    }
                    weight += G::weight(&item);
                    group.push(item);
                }
                Ok(Message::Stop) => stopping = true,
                Err(_) => break,
            }
        }
        let grouping = grouping.clone();
        tokio::spawn(async move {
            grouping.write(group).await;
            drop(writer);
        });
    }
    // Stopping: the groups handed out are written before this returns.
    let _ = writers.acquire_many(G::AT_ONCE as u32).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::oneshot;

    use super::*;

    /// Records each group; items are keys, a repeat of one opens a new group.
    struct Recorder<const LINGER: bool>(Arc<Mutex<Vec<Vec<&'static str>>>>);

    impl<const L: bool> Grouping for Recorder<L> {
        type Item = (&'static str, oneshot::Sender<()>);
        const MAX_WEIGHT: usize = 3;
        const LINGER: bool = L;

        fn key(item: &Self::Item) -> Option<&str> {
            Some(item.0)
        }

        async fn write(&self, group: Vec<Self::Item>) {
            self.0.lock().unwrap().push(group.iter().map(|(key, _)| *key).collect());
            for (_, reply) in group {
                let _ = reply.send(());
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn gathers_what_waits_up_to_the_weight_and_splits_on_a_repeat() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (groups, task) = Groups::start(Recorder::<false>(written.clone()));
        let mut answers = Vec::new();
        // Sent before the task first runs, so all of them are waiting when it does.
        for key in ["a", "b", "c", "d", "e", "e", "f"] {
            let (reply, answer) = oneshot::channel();
            assert!(groups.send((key, reply)).is_ok());
            answers.push(answer);
        }
        groups.stop();
        task.await.unwrap();
        for answer in answers {
            answer.await.unwrap();
        }
        assert_eq!(*written.lock().unwrap(), vec![vec!["a", "b", "c"], vec!["d", "e"], vec!["e", "f"]]);
        let (reply, _) = oneshot::channel();
        assert!(groups.send(("g", reply)).is_err(), "a stopped task takes nothing more");
    }

    /// Writes one item while another task, ready to run, is about to send a second.
    async fn groups_of_a_call_and_one_on_its_way<const LINGER: bool>() -> Vec<Vec<&'static str>> {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (groups, task) = Groups::start(Recorder::<LINGER>(written.clone()));
        let groups = Arc::new(groups);
        let (reply, first) = oneshot::channel();
        assert!(groups.send(("a", reply)).is_ok());
        // Spawned after the grouping task: it runs only when that task lets it.
        let on_its_way = tokio::spawn({
            let groups = groups.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                assert!(groups.send(("b", reply)).is_ok());
                answer.await.unwrap();
            }
        });
        first.await.unwrap();
        on_its_way.await.unwrap();
        groups.stop();
        task.await.unwrap();
        written.lock().unwrap().clone()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_lingering_group_takes_in_calls_from_tasks_ready_to_run() {
        assert_eq!(groups_of_a_call_and_one_on_its_way::<true>().await, vec![vec!["a", "b"]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_linger_a_group_is_written_with_what_waits_only() {
        assert_eq!(groups_of_a_call_and_one_on_its_way::<false>().await, vec![vec!["a"], vec!["b"]]);
    }
}
