//! An invocation's log: `log` calls and stdout/stderr, captured with caps.
//!
//! The host `log` import and the WASI stdout/stderr streams write into one [`SharedLog`].
//! Going over the line or byte cap traps the guest at once, so a flood costs the host at
//! most the cap, not whatever the plugin manages before its deadline.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::limits::Limits;
use crate::domain::plugin_output::{LogLevel, LogLine};

/// The log of the invocation in progress on one instance.
#[derive(Clone)]
pub(crate) struct SharedLog(Arc<Mutex<LogBuffer>>);

pub(crate) struct LogBuffer {
    lines: Vec<LogLine>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
    max_line_bytes: usize,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
    /// Set when a cap was hit: why, for the invocation's error.
    pub(crate) overflow: Option<String>,
}

impl SharedLog {
    pub(crate) fn new(limits: &Limits) -> Self {
        SharedLog(Arc::new(Mutex::new(LogBuffer {
            lines: Vec::new(),
            bytes: 0,
            max_lines: limits.log_lines,
            max_bytes: limits.log_bytes,
            max_line_bytes: limits.log_line_bytes,
            partial_stdout: Vec::new(),
            partial_stderr: Vec::new(),
            overflow: None,
        })))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, LogBuffer> {
        // A poisoned log only means a panic elsewhere mid-append; the lines are still usable.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A WASI stdout or stderr that writes into this log.
    pub(crate) fn stream(&self, level: LogLevel) -> CapturedStream {
        CapturedStream { log: self.clone(), level }
    }
}

impl LogBuffer {
    /// Records a `log` call; `Err` (with the reason) once a cap is exceeded.
    pub(crate) fn push(&mut self, level: LogLevel, message: &str) -> Result<(), String> {
        self.charge(message.len())?;
        self.add_line(level, message);
        Ok(())
    }

    /// Records bytes written to stdout or stderr, a line per `\n`.
    fn write_stream(&mut self, level: LogLevel, bytes: &[u8]) -> Result<(), String> {
        self.charge(bytes.len())?;
        let mut partial = std::mem::take(self.partial(level));
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            partial.extend_from_slice(chunk);
            if partial.ends_with(b"\n") {
                partial.pop();
                self.add_line(level, &String::from_utf8_lossy(&partial));
                partial.clear();
            }
        }
        *self.partial(level) = partial;
        Ok(())
    }

    /// The invocation's lines (with any unfinished stdout/stderr line), leaving the buffer
    /// empty for the next invocation on the same instance.
    pub(crate) fn take(&mut self) -> Vec<LogLine> {
        for level in [LogLevel::Stdout, LogLevel::Stderr] {
            let partial = std::mem::take(self.partial(level));
            if !partial.is_empty() {
                self.add_line(level, &String::from_utf8_lossy(&partial));
            }
        }
        self.bytes = 0;
        self.overflow = None;
        std::mem::take(&mut self.lines)
    }

    fn partial(&mut self, level: LogLevel) -> &mut Vec<u8> {
        if level == LogLevel::Stderr { &mut self.partial_stderr } else { &mut self.partial_stdout }
    }

    fn charge(&mut self, bytes: usize) -> Result<(), String> {
        if let Some(reason) = &self.overflow {
            return Err(reason.clone());
        }
        self.bytes += bytes;
        let reason = if self.bytes > self.max_bytes {
            format!("more than {} bytes of log and stdout/stderr", self.max_bytes)
        } else if self.lines.len() >= self.max_lines {
            format!("more than {} log lines", self.max_lines)
        } else {
            return Ok(());
        };
        self.overflow = Some(reason.clone());
        Err(reason)
    }

    fn add_line(&mut self, level: LogLevel, message: &str) {
        let message = if message.len() > self.max_line_bytes {
            let cut = message.floor_char_boundary(self.max_line_bytes);
            format!("{}… ({} bytes cut)", &message[..cut], message.len() - cut)
        } else {
            message.to_owned()
        };
        self.lines.push(LogLine { level, message });
    }
}

/// stdout or stderr of a plugin, appended to its invocation's log.
pub(crate) struct CapturedStream {
    log: SharedLog,
    level: LogLevel,
}

impl CapturedStream {
    fn append(&self, bytes: &[u8]) -> Result<(), String> {
        self.log.lock().write_stream(self.level, bytes)
    }
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.log.stream(self.level))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.log.stream(self.level))
    }
}

impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes).map_err(|reason| StreamError::trap(&reason))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.append(buf).map(|()| buf.len()).map_err(io::Error::other))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: usize, bytes: usize, line_bytes: usize) -> SharedLog {
        SharedLog::new(&Limits {
            log_lines: lines,
            log_bytes: bytes,
            log_line_bytes: line_bytes,
            ..Limits::default()
        })
    }

    #[test]
    fn stdout_is_split_into_lines_across_writes() {
        let log = log(10, 1000, 100);
        let mut buf = log.lock();
        buf.write_stream(LogLevel::Stdout, b"hel").unwrap();
        buf.write_stream(LogLevel::Stdout, b"lo\nwor").unwrap();
        buf.push(LogLevel::Info, "between").unwrap();
        let lines = buf.take();
        let got: Vec<_> = lines.iter().map(|l| (l.level, l.message.as_str())).collect();
        assert_eq!(
            got,
            [(LogLevel::Stdout, "hello"), (LogLevel::Info, "between"), (LogLevel::Stdout, "wor")]
        );
        assert!(buf.take().is_empty(), "take leaves the buffer empty");
    }

    #[test]
    fn caps_on_bytes_and_lines_stick_until_take() {
        let log = log(2, 10, 100);
        let mut buf = log.lock();
        buf.push(LogLevel::Info, "12345").unwrap();
        assert!(buf.push(LogLevel::Info, "123456").unwrap_err().contains("10 bytes"));
        assert!(buf.push(LogLevel::Info, "").is_err(), "stays over the cap");
        assert_eq!(buf.take().len(), 1);
        buf.push(LogLevel::Info, "a").unwrap();
        buf.push(LogLevel::Info, "b").unwrap();
        assert!(buf.push(LogLevel::Info, "c").unwrap_err().contains("2 log lines"));
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let log = log(10, 1000, 5);
        let mut buf = log.lock();
        buf.push(LogLevel::Warn, "aaaaé…").unwrap();
        assert_eq!(buf.take()[0].message, "aaaa… (5 bytes cut)");
    }
}
