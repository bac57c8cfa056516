//! The PostgreSQL backend's foundation: finding the read-write server among several hosts and
//! checking that its commits are durable (`connect`), the embedded schema and its migrations
//! (`migrate`), SQLite-style `?N` parameters in PostgreSQL's `$N` form (`placeholders`), and the
//! group-committed write path on a PostgreSQL connection (`writer`).
//!
//! The same jobs-in-one-transaction design as the SQLite writer (`group_commit.rs`): a caller is
//! answered only after COMMIT returned; a failure answers every caller of the batch with an
//! error, never a confirmation. With a synchronous standby COMMIT returns only once the standby
//! has the WAL, so a confirmed write survives the loss of the primary.

pub mod bus;
mod connect;
mod migrate;
mod placeholders;
mod reader;
mod values;
mod writer;

pub use connect::{connect_primary, Durability, PostgresSettings};
pub use migrate::{migrate, MIGRATIONS};
pub use placeholders::to_postgres;
pub use reader::PostgresReader;
pub use writer::{PgTx, PostgresWriter};

#[cfg(test)]
mod account_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
