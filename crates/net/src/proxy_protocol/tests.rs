//! Unit tests for the PROXY protocol parser and encoders.
