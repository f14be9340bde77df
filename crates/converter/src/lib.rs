//! converter service (being written).
