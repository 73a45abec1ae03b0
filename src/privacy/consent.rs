//! Consent signals: `DNT: 1` and `Sec-GPC: 1` (Global Privacy Control).

/// Which signal asked not to be tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOut {
    Dnt,
    Gpc,
}

impl OptOut {
    pub fn as_str(self) -> &'static str {
        match self {
            OptOut::Dnt => "dnt",
            OptOut::Gpc => "gpc",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals {
    pub honor_dnt: bool,
    pub honor_gpc: bool,
}

impl Signals {
    /// The first honoured signal the request carries.
    pub fn opt_out(&self, headers: &[httparse::Header<'_>]) -> Option<OptOut> {
        if !self.honor_dnt && !self.honor_gpc {
            return None;
        }
        headers.iter().find_map(|h| {
            let on = h.value.trim_ascii() == b"1";
            if self.honor_gpc && on && h.name.eq_ignore_ascii_case("sec-gpc") {
                Some(OptOut::Gpc)
            } else if self.honor_dnt && on && h.name.eq_ignore_ascii_case("dnt") {
                Some(OptOut::Dnt)
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(s: Signals, name: &str, value: &str) -> Option<OptOut> {
        s.opt_out(&[httparse::Header {
            name,
            value: value.as_bytes(),
        }])
    }

    #[test]
    fn signals() {
        let both = Signals {
            honor_dnt: true,
            honor_gpc: true,
        };
        assert_eq!(signal(both, "DNT", "1"), Some(OptOut::Dnt));
        assert_eq!(signal(both, "Sec-GPC", " 1"), Some(OptOut::Gpc));
        assert_eq!(signal(both, "DNT", "0"), None);
        assert_eq!(signal(both, "Sec-GPC", "true"), None);
        let dnt_only = Signals {
            honor_dnt: true,
            honor_gpc: false,
        };
        assert_eq!(signal(dnt_only, "Sec-GPC", "1"), None);
        assert_eq!(signal(Signals::default(), "DNT", "1"), None);
    }
}
