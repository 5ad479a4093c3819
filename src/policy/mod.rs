//! Who is served, and how much: the access lists (`--allow`, `--deny`, and the files of
//! `--allow-file` and `--deny-file` as text), the per-source tables
//! (`--max-per-source`, `--max-rate`, `--udp-rate`) and the gate that answers, for a new
//! connection or a datagram, whether it is served. The time is passed in; nothing here opens a
//! socket, logs or counts.

pub mod access;
pub mod gate;
pub mod lists;
pub mod sources;
