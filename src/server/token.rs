//! What each poll token stands for: the waker, the signal pipe, the console's standard input,
//! then one token per bound instance (listener or UDP socket), then one per connection.
//!
//! ```text
//!   0        1         2         3 ... 3+n-1            3+n ...
//!   waker    signals   console   instance 0 .. n-1      connection (slab key 0, 1, ...)
//! ```
//! The two sockets of a handover (`--handover`) have the last tokens but one and two, which
//! no connection reaches. The arithmetic lives here and nowhere else: [`Tokens::token`] and [`Tokens::target`] are the
//! one conversion each way.

use mio::Token;

/// The thing behind a poll token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A `Shutdown` handle woke the loop.
    Waker,
    /// A signal arrived.
    Signals,
    /// The operator typed (`--console`).
    Console,
    /// A bound instance's socket, by its index in the instance list.
    Instance(usize),
    /// A connection, by its slab key.
    Conn(usize),
    /// The handover socket (`--handover PATH`): a new daemon connects.
    Handover,
    /// The connection of the new daemon taking over.
    Successor,
}

/// The first instance's token.
const FIRST_INSTANCE: usize = 3;
/// The handover's tokens (`usize::MAX` is left to the poll).
const HANDOVER: usize = usize::MAX - 1;
const SUCCESSOR: usize = usize::MAX - 2;

/// Tokens for a loop with a given number of instances.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tokens {
    instances: usize,
}

impl Tokens {
    pub(crate) fn new(instances: usize) -> Tokens {
        Tokens { instances }
    }

    pub(crate) fn token(self, target: Target) -> Token {
        Token(match target {
            Target::Waker => 0,
            Target::Signals => 1,
            Target::Console => 2,
            Target::Instance(i) => FIRST_INSTANCE + i,
            Target::Conn(key) => FIRST_INSTANCE + self.instances + key,
            Target::Handover => HANDOVER,
            Target::Successor => SUCCESSOR,
        })
    }

    pub(crate) fn target(self, token: Token) -> Target {
        match token.0 {
            0 => Target::Waker,
            1 => Target::Signals,
            2 => Target::Console,
            HANDOVER => Target::Handover,
            SUCCESSOR => Target::Successor,
            t if t < FIRST_INSTANCE + self.instances => Target::Instance(t - FIRST_INSTANCE),
            t => Target::Conn(t - FIRST_INSTANCE - self.instances),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_comes_back_from_its_token() {
        let tokens = Tokens::new(2);
        for target in [
            Target::Waker,
            Target::Signals,
            Target::Console,
            Target::Instance(0),
            Target::Instance(1),
            Target::Conn(0),
            Target::Conn(7),
            Target::Handover,
            Target::Successor,
        ] {
            assert_eq!(tokens.target(tokens.token(target)), target);
        }
        assert_eq!(tokens.token(Target::Conn(0)), Token(5));
    }
}
