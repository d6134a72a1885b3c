"""The registry schema this package reads.

`PRAGMA user_version` of a registry counts the migrations applied to it (`src/registry/schema.rs`).
A Rust test (`schema::tests`) asserts that the line below equals the Rust side's current version,
so a new migration cannot ship without this package being checked against it.
"""

SCHEMA_VERSION = 9
