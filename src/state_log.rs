//! "Log once per change of state": a failing Redis, a full disk or a refused key is said
//! once when it starts and once when it ends, never once per event or per retry.

/// Remembers the last state that was reported.
#[derive(Debug, Default)]
pub struct StateLog<S> {
    current: Option<S>,
}

impl<S: PartialEq> StateLog<S> {
    pub fn new() -> Self {
        StateLog { current: None }
    }

    /// Records `state`; returns the state it replaces (`Some(None)` on the first call)
    /// only when it really changed. Log there, and nowhere else.
    pub fn change(&mut self, state: S) -> Option<Option<S>> {
        if self.current.as_ref() == Some(&state) {
            return None;
        }
        Some(self.current.replace(state))
    }

    /// The last state recorded.
    pub fn current(&self) -> Option<&S> {
        self.current.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_changes() {
        let mut s = StateLog::new();
        assert_eq!(s.change("down"), Some(None));
        assert_eq!(s.change("down"), None);
        assert_eq!(s.change("up"), Some(Some("down")));
        assert_eq!(s.current(), Some(&"up"));
    }
}
