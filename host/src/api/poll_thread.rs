//! A thread of the API's own that runs the jobs handed to it one after another and, after each,
//! keeps looking for the next one for a short while before it sleeps: the document stager
//! ([`super::stager`]) and the group commit's writer ([`super::group_commit`]) are each one.
//!
//! Why not the runtime's blocking pool: each `spawn_blocking` woke a pool thread that had gone
//! to sleep, and on a virtual machine waking a thread on an idle core is a system call that
//! sends an inter-processor interrupt, paid on the request's path. A client that sends one
//! request after another instead finds this thread awake, and handing it a job is a push onto a
//! channel, with no system call on the API thread.
//!
//! Between looks it yields its core to the OS (`sched_yield`), unlike the API thread's
//! busy-poll: a thread woken on this core (the client reading its answer, a chain worker, the
//! checkpoint thread) must get it at once. Looking with a bare spin-loop hint instead, the
//! woken client sometimes waited out the thread's time slice, and the p99 of one-client cat1
//! posts rose from 1.3–1.9 ms to 2.1–3.4 ms (docs/benchmarks.md). The cost is bounded like the
//! busy-poll's: at most the poll time of a core that others may take, after each job, and
//! nothing while none come.
//!
//! Like the busy-poll ([`super::busy_poll`]) it sleeps instead of polling while the broker's
//! checkpoint thread works ([`BackgroundWork`]), so that thread and the clients it would keep
//! waiting have the cores.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vcon_broker::BackgroundWork;

/// One job: whatever it answers, it sends itself (a `oneshot`), so a job that panics drops its
/// sender and its caller sees that.
pub type Job = Box<dyn FnOnce() + Send>;

/// The thread. Dropped, it waits for the thread to finish the jobs it was given and end, so
/// whatever they hold (a broker) is released before the API server reports that it stopped.
#[derive(Debug)]
pub struct PollThread {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl PollThread {
    /// Starts the thread `name`, polling for `spin` after each job except while `stand_aside`
    /// runs ([`Duration::ZERO`]: it sleeps at once).
    pub fn start(name: &str, spin: Duration, stand_aside: BackgroundWork) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(&queue, spin, &stand_aside))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands `job` to the thread; gives it back if the thread is gone, so the caller can run it
    /// where it is.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> Result<(), Job> {
        let job: Job = Box::new(job);
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|refused| refused.0),
            None => Err(job),
        }
    }
}

impl Drop for PollThread {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has run what it holds.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let name = thread.thread().name().unwrap_or("API").to_owned();
            if thread.join().is_err() {
                tracing::error!("the {name} thread panicked");
            }
        }
    }
}

/// The thread: each job in turn, polling the queue for `spin` after each before it sleeps (at
/// once while `stand_aside` runs). A job that panics is logged and the thread goes on (its
/// caller sees its answer dropped).
fn run(queue: &Receiver<Job>, spin: Duration, stand_aside: &BackgroundWork) {
    let mut last_job: Option<Instant> = None;
    loop {
        let job = match last_job {
            Some(at) if at.elapsed() < spin && !stand_aside.running() => match queue.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Empty) => {
                    // The core to whoever wants it (see the module docs).
                    std::thread::yield_now();
                    continue;
                }
                Err(TryRecvError::Disconnected) => return,
            },
            // Asleep until a job comes, or every handle is gone.
            _ => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            let name = std::thread::current().name().unwrap_or("API").to_owned();
            tracing::error!("a job on the {name} thread panicked; the thread goes on");
        }
        last_job = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(thread: &PollThread, job: impl FnOnce() -> u32 + Send + 'static) -> Option<u32> {
        let (done, outcome) = mpsc::channel();
        let job = move || {
            let _ = done.send(job());
        };
        if thread.run(job).is_err() {
            return None;
        }
        outcome.recv_timeout(Duration::from_secs(10)).ok()
    }

    /// A thread polling for `spin` after each job, with no background work to stand aside for.
    fn poll_thread(spin: Duration) -> PollThread {
        PollThread::start("poll-thread-test", spin, BackgroundWork::default()).unwrap()
    }

    #[test]
    fn a_job_that_panics_costs_its_answer_and_not_the_thread() {
        // Polling between jobs and sleeping between them: both ways back to the queue must
        // survive the panic.
        for spin in [Duration::from_millis(50), Duration::ZERO] {
            let thread = poll_thread(spin);
            assert_eq!(answer(&thread, || 1), Some(1));
            assert_eq!(
                answer(&thread, || panic!("a job that panics")),
                None,
                "the panicked job's answer is dropped, so its caller sees it"
            );
            assert_eq!(answer(&thread, || 3), Some(3), "the thread went on");
        }
    }

    #[test]
    fn jobs_run_in_the_order_given() {
        let thread = poll_thread(Duration::from_millis(5));
        let (done, outcomes) = mpsc::channel();
        for i in 0..100 {
            let done = done.clone();
            assert!(thread.run(move || done.send(i).unwrap()).is_ok());
        }
        let order: Vec<i32> = (0..100)
            .map(|_| outcomes.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn dropping_it_runs_what_it_holds_and_ends_the_thread_even_while_polling() {
        let thread = poll_thread(Duration::from_secs(60));
        let (done, outcomes) = mpsc::channel();
        for i in 0..3 {
            let done = done.clone();
            let sent = thread.run(move || {
                std::thread::sleep(Duration::from_millis(10));
                done.send(i).unwrap();
            });
            assert!(sent.is_ok());
        }
        // Polling for a minute, yet the drop ends it as soon as its jobs are done.
        let started = Instant::now();
        drop(thread);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(outcomes.try_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    /// The scheduler state of this process's thread `name` (`R` running or runnable, `S`
    /// asleep), from `/proc`.
    fn state_of(name: &str) -> char {
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                let stat = std::fs::read_to_string(task.join("stat")).unwrap();
                // `pid (comm) state ...`: the state follows the last `)`.
                let after = &stat[stat.rfind(')').unwrap() + 1..];
                return after.trim_start().chars().next().unwrap();
            }
        }
        panic!("no thread named {name}");
    }

    /// Whether thread `name` is seen running or runnable in one of 50 looks over 50 ms: a
    /// thread that polls (a `sched_yield` leaves it runnable) is, one asleep is not.
    fn seen_polling(name: &str) -> bool {
        (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            state_of(name) == 'R'
        })
    }

    /// Whether thread `name` is seen asleep in every look over 50 ms, within 5 s.
    fn settles_asleep(name: &str) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            let looks = (0..50).all(|_| {
                std::thread::sleep(Duration::from_millis(1));
                state_of(name) == 'S'
            });
            if looks {
                return true;
            }
        }
        false
    }

    #[test]
    fn it_sleeps_instead_of_polling_while_the_broker_works_in_the_background() {
        let name = "poll-aside-test";
        let work = BackgroundWork::default();
        let thread = PollThread::start(name, Duration::from_secs(60), work.clone()).unwrap();
        assert_eq!(answer(&thread, || 1), Some(1));
        // Polling for a minute after the job.
        assert!(
            seen_polling(name),
            "the thread was not polling after its job"
        );
        let round = work.enter();
        assert!(settles_asleep(name), "it kept polling through the round");
        assert_eq!(answer(&thread, || 2), Some(2), "a job still wakes it");
        drop(round);
        assert_eq!(answer(&thread, || 3), Some(3));
        assert!(
            seen_polling(name),
            "after the round it polls again after each job"
        );
    }
}
