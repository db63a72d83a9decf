//! Placeholder until the ledger issue lands.
