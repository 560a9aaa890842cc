//! End-to-end tests: the whole lifecycle through `cloudify-osb serve` (and the Lambda
//! binaries) against the real servers (DESIGN.md §8.4). One test binary; modules inside.

mod catalog;
mod faults;
mod hardening;
mod lifecycle;
mod ops;
mod outputs_binder;
mod races;
mod readme;
mod update;
mod world;
