//! API tests (DESIGN.md §8.2): the router end to end over the in-memory store, a scriptable
//! fake orchestrator and a fake binder. One module per route, plus the protocol rules that
//! hold on every route (auth, version, request identity, error bodies, order of checks).

mod bind;
mod binding_last_operation;
mod catalog;
mod deprovision;
mod get_binding;
mod get_instance;
mod last_operation;
mod protocol;
mod provision;
mod support;
mod unbind;
mod update;
