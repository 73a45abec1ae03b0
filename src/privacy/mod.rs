//! Visitors without cookies (a daily-salted hash), the opt-in cookie, consent signals.

pub mod consent;
pub mod cookie;
pub mod salt;
pub mod visitor;

pub use consent::{OptOut, Signals};
pub use cookie::VisitorCookie;
pub use salt::{SaltBook, SaltKeeper};
pub use visitor::VisitorId;
