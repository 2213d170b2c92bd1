//! Build progress on stderr, BuildKit style.
//!
//! - `plain`: `#3 [builder 2/5] RUN make`, then the step's output lines as `#3 0.512 text`, then
//!   `#3 DONE 1.2s`, `#3 CACHED` or `#3 ERROR: message`;
//! - `tty`: a live view (indicatif) with one spinner and timer per running step;
//! - `json`: one object per line: `{"version":1,"event":"start","id":3,"name":"...","time":...}`
//!   with events `start`, `log`, `cached`, `done`, `error`, `warning`;
//! - quiet: nothing.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cli::ProgressMode;

/// The progress sink; shared by the stage threads.
pub struct Progress {
    mode: Mode,
    start: Instant,
    state: Mutex<State>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Plain,
    Tty,
    Json,
}

struct State {
    out: Box<dyn Write + Send>,
    started: HashMap<u32, Instant>,
    bars: HashMap<u32, indicatif::ProgressBar>,
    multi: Option<indicatif::MultiProgress>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran.
    Done,
    /// Taken from the cache.
    Cached,
}

impl Progress {
    /// A sink for `mode` writing to stderr; `quiet` silences it. `auto` picks `tty` when stderr is
    /// a terminal.
    pub fn new(mode: ProgressMode, quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let mode = match (quiet, mode) {
            (true, _) => Mode::Quiet,
            (_, ProgressMode::Plain) => Mode::Plain,
            (_, ProgressMode::Json) => Mode::Json,
            (_, ProgressMode::Tty) => Mode::Tty,
            (_, ProgressMode::Auto) => {
                if std::io::stderr().is_terminal() {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
        };
        Self::with_writer(mode, Box::new(std::io::stderr()))
    }

    /// A plain or json sink writing to `out` (tests).
    pub fn to_writer(json: bool, out: Box<dyn Write + Send>) -> Progress {
        Self::with_writer(if json { Mode::Json } else { Mode::Plain }, out)
    }

    fn with_writer(mode: Mode, out: Box<dyn Write + Send>) -> Progress {
        let multi = (mode == Mode::Tty).then(indicatif::MultiProgress::new);
        Progress {
            mode,
            start: Instant::now(),
            state: Mutex::new(State {
                out,
                started: HashMap::new(),
                bars: HashMap::new(),
                multi,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut g = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    fn json(st: &mut State, v: &serde_json::Value) {
        let _ = writeln!(st.out, "{v}");
    }

    /// A step started.
    pub fn start(&self, id: u32, name: &str) {
        let now = Instant::now();
        let t = self.start.elapsed().as_secs_f64();
        self.with(|st| {
            st.started.insert(id, now);
            match self.mode {
                Mode::Quiet => {}
                Mode::Plain => {
                    let _ = writeln!(st.out, "#{id} {name}");
                }
                Mode::Json => Self::json(
                    st,
                    &serde_json::json!({"version":1,"event":"start","id":id,"name":name,"time":t}),
                ),
                Mode::Tty => {
                    if let Some(m) = &st.multi {
                        let pb = m.add(indicatif::ProgressBar::new_spinner());
                        pb.set_style(
                            indicatif::ProgressStyle::with_template(
                                "{spinner} #{prefix} {msg} {elapsed_precise}",
                            )
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                        );
                        pb.set_prefix(id.to_string());
                        pb.set_message(name.to_string());
                        pb.enable_steady_tick(Duration::from_millis(100));
                        st.bars.insert(id, pb);
                    }
                }
            }
        });
    }

    /// A line of a step's output.
    pub fn log(&self, id: u32, line: &str) {
        self.with(|st| {
            let t = st
                .started
                .get(&id)
                .map_or(0.0, |s| s.elapsed().as_secs_f64());
            match self.mode {
                Mode::Quiet => {}
                Mode::Plain => {
                    let _ = writeln!(st.out, "#{id} {t:.3} {line}");
                }
                Mode::Json => Self::json(
                    st,
                    &serde_json::json!({"version":1,"event":"log","id":id,"time":t,"line":line}),
                ),
                Mode::Tty => {
                    if let Some(m) = &st.multi {
                        let _ = m.println(format!("#{id} {t:.3} {line}"));
                    }
                }
            }
        });
    }

    /// A step finished; returns its duration.
    pub fn finish(&self, id: u32, outcome: Outcome) -> Duration {
        self.with(|st| {
            let d = st.started.get(&id).map_or(Duration::ZERO, Instant::elapsed);
            match (self.mode, outcome) {
                (Mode::Quiet, _) => {}
                (Mode::Plain, Outcome::Done) => {
                    let _ = writeln!(st.out, "#{id} DONE {:.1}s", d.as_secs_f64());
                }
                (Mode::Plain, Outcome::Cached) => {
                    let _ = writeln!(st.out, "#{id} CACHED");
                }
                (Mode::Json, o) => {
                    let ev = if o == Outcome::Cached { "cached" } else { "done" };
                    Self::json(st, &serde_json::json!({"version":1,"event":ev,"id":id,"duration":d.as_secs_f64()}));
                }
                (Mode::Tty, o) => {
                    if let Some(pb) = st.bars.remove(&id) {
                        let tail = if o == Outcome::Cached { "CACHED".to_string() } else { format!("DONE {:.1}s", d.as_secs_f64()) };
                        pb.set_style(indicatif::ProgressStyle::with_template("✔ #{prefix} {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()));
                        pb.finish_with_message(format!("{} {tail}", pb.message()));
                    }
                }
            }
            d
        })
    }

    /// A step failed.
    pub fn error(&self, id: u32, message: &str) {
        self.with(|st| match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                let _ = writeln!(st.out, "#{id} ERROR: {message}");
            }
            Mode::Json => Self::json(
                st,
                &serde_json::json!({"version":1,"event":"error","id":id,"message":message}),
            ),
            Mode::Tty => {
                if let Some(pb) = st.bars.remove(&id) {
                    pb.abandon_with_message(format!("{} ERROR: {message}", pb.message()));
                }
            }
        });
    }

    /// A warning not tied to a step.
    pub fn warning(&self, message: &str) {
        self.with(|st| match self.mode {
            Mode::Quiet => {}
            Mode::Json => Self::json(
                st,
                &serde_json::json!({"version":1,"event":"warning","message":message}),
            ),
            Mode::Plain => {
                let _ = writeln!(st.out, "WARNING: {message}");
            }
            Mode::Tty => {
                if let Some(m) = &st.multi {
                    let _ = m.println(format!("WARNING: {message}"));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines() {
        let b = Buf::default();
        let p = Progress::to_writer(false, Box::new(b.clone()));
        p.start(3, "[builder 2/5] RUN make");
        p.log(3, "hello");
        p.finish(3, Outcome::Done);
        p.start(4, "[builder 3/5] COPY a b");
        p.finish(4, Outcome::Cached);
        p.start(5, "[stage-1 2/2] RUN false");
        p.error(5, "exit code 1");
        let s = String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "#3 [builder 2/5] RUN make");
        assert!(
            lines[1].starts_with("#3 0.0") && lines[1].ends_with(" hello"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("#3 DONE ") && lines[2].ends_with('s'));
        assert_eq!(
            &lines[3..],
            [
                "#4 [builder 3/5] COPY a b",
                "#4 CACHED",
                "#5 [stage-1 2/2] RUN false",
                "#5 ERROR: exit code 1"
            ]
        );
    }

    #[test]
    fn json_events() {
        let b = Buf::default();
        let p = Progress::to_writer(true, Box::new(b.clone()));
        p.start(1, "[1/1] FROM x");
        p.finish(1, Outcome::Cached);
        p.warning("w");
        let s = String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
        let v: Vec<serde_json::Value> = s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v[0]["event"], "start");
        assert_eq!(v[0]["version"], 1);
        assert_eq!(v[1]["event"], "cached");
        assert_eq!(v[2]["event"], "warning");
    }
}
