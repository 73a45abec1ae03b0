//! `pixelpipe top`: the aggregates as a live terminal view, refreshed in place, quit with
//! `q` or Ctrl-C. When stdout is not a terminal it prints plain text snapshots instead
//! (no escape codes), one every interval.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, terminal};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use super::stats::{self, Query, Snapshot};
use crate::config::AnalyticsConfig;
use crate::config::Config;

/// Errors of `pixelpipe top`.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
}

#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// The Redis list whose aggregates to show (default: the `http.key` of the configuration).
    #[arg(long)]
    pub key: Option<String>,
    /// Minutes over which top values, uniques and the A/B table are counted.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(i64).range(1..=1440))]
    pub window: i64,
    /// Time between refreshes, e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Exit after this many refreshes.
    #[arg(long)]
    pub iterations: Option<u64>,
}

pub fn run(config: &Config, args: &TopArgs) -> Result<(), TopError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TopError::Terminal)?;
    let client = redis::Client::open(config.redis.as_str())?;
    let list = args.key.clone().unwrap_or_else(|| config.http.key.clone());
    let mut reader = Reader {
        client,
        conn: None,
        analytics: config.analytics.clone(),
        list,
        window: args.window,
    };
    if std::io::stdout().is_terminal() {
        interactive(&runtime, &mut reader, args)
    } else {
        plain(&runtime, &mut reader, args)
    }
}

struct Reader {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    analytics: AnalyticsConfig,
    list: String,
    window: i64,
}

impl Reader {
    /// A snapshot, or the text of why there is none.
    fn read(&mut self, rt: &tokio::runtime::Runtime) -> Result<Snapshot, String> {
        rt.block_on(async {
            if self.conn.is_none() {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)));
                match self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => return Err(format!("Redis is unreachable: {e}")),
                }
            }
            let conn = self.conn.as_mut().expect("connected above");
            let q = Query {
                list: self.list.clone(),
                window_minutes: self.window,
                now: stats::now(),
            };
            stats::snapshot(conn, &self.analytics, &q)
                .await
                .map_err(|e| {
                    self.conn = None;
                    format!("Redis is unreachable: {e}")
                })
        })
    }
}

fn plain(
    rt: &tokio::runtime::Runtime,
    reader: &mut Reader,
    args: &TopArgs,
) -> Result<(), TopError> {
    let mut out = std::io::stdout().lock();
    let mut n = 0;
    loop {
        let text = match reader.read(rt) {
            Ok(s) => render(&s),
            Err(e) => vec![e],
        };
        for line in text {
            writeln!(out, "{line}").map_err(TopError::Output)?;
        }
        writeln!(out).map_err(TopError::Output)?;
        out.flush().map_err(TopError::Output)?;
        n += 1;
        if args.iterations.is_some_and(|max| n >= max) {
            return Ok(());
        }
        std::thread::sleep(args.interval);
    }
}

/// Puts the terminal back however `interactive` ends.
struct Screen;

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

fn interactive(
    rt: &tokio::runtime::Runtime,
    reader: &mut Reader,
    args: &TopArgs,
) -> Result<(), TopError> {
    let term = TopError::Terminal;
    terminal::enable_raw_mode().map_err(term)?;
    let _screen = Screen;
    let mut out = std::io::stdout();
    execute!(out, terminal::EnterAlternateScreen, cursor::Hide).map_err(term)?;
    let mut n = 0;
    loop {
        let mut text = match reader.read(rt) {
            Ok(s) => render(&s),
            Err(e) => vec![e],
        };
        text.push(String::new());
        text.push("q: quit".into());
        queue!(
            out,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All)
        )
        .map_err(term)?;
        for line in text {
            // Raw mode: a line feed does not return the carriage.
            write!(out, "{line}\r\n").map_err(term)?;
        }
        out.flush().map_err(term)?;
        n += 1;
        if args.iterations.is_some_and(|max| n >= max) {
            return Ok(());
        }
        let next = Instant::now() + args.interval;
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            if !event::poll(left).map_err(term)? {
                break;
            }
            if let Event::Key(k) = event::read().map_err(term)? {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                let quit = matches!(
                    k.code,
                    KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc
                );
                if k.kind == KeyEventKind::Press && (ctrl_c || quit) {
                    return Ok(());
                }
            }
        }
    }
}

/// The snapshot as lines of plain text.
pub fn render(s: &Snapshot) -> Vec<String> {
    let time = chrono::DateTime::from_timestamp(s.now, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let mut lines = vec![
        format!("pixelpipe top — list {} — {time}", s.key),
        format!(
            "events/s now {}   last minute {:.1}/s   total {}   malformed {}",
            s.rate_now, s.rate_minute, s.total, s.malformed
        ),
        format!(
            "last 60 s  {}",
            sparkline(&s.per_second[s.per_second.len().saturating_sub(60)..])
        ),
        format!(
            "unique visitors   this minute {}   last {} min {}   today {}",
            s.uniques.minute, s.window_minutes, s.uniques.window, s.uniques.today
        ),
    ];
    for t in &s.top {
        lines.push(String::new());
        lines.push(format!("top {} (last {} min)", t.param, s.window_minutes));
        if t.values.is_empty() {
            lines.push("  (none)".into());
        }
        for (value, n) in &t.values {
            lines.push(format!("  {:<30} {n:>10}", printable(value)));
        }
    }
    if let Some(ab) = &s.ab {
        lines.push(String::new());
        lines.push(format!(
            "A/B {} against goal {} (last {} min)",
            ab.param, ab.goal, s.window_minutes
        ));
        lines.push(format!(
            "  {:<20} {:>10} {:>10} {:>11}",
            "variant", "hits", "goals", "conversion"
        ));
        for v in &ab.variants {
            lines.push(format!(
                "  {:<20} {:>10} {:>10} {:>10.2}%",
                printable(&v.name),
                v.hits,
                v.goals,
                v.conversion * 100.0
            ));
        }
    }
    lines
}

/// Values come from query strings: keep control characters off the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(30)
        .collect()
}

fn sparkline(points: &[(i64, u64)]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    points
        .iter()
        .map(|&(_, n)| BARS[((n * 7) / max) as usize])
        .collect()
}
