//! lasagna runs one command inside a stack of independent defense layers.
//!
//! Data flows one way: `profile` (YAML, `extends`, validation with line:col errors) →
//! `plan` (per layer: apply, degrade, skip or refuse, from the profile, the probed `host`
//! and `--without`) → `arm` (everything prepared before the clone) → `supervisor` (clone,
//! id maps, wait loop) → `sandbox` (the child's fixed sequence, init, payload) → `report`.
//! Each layer lives in its own module under `layers`. All `unsafe` is in `sys`.
//! ARCHITECTURE.md describes the launch order step by step.

#![deny(unsafe_code)]

pub mod arm;
pub mod battery;
pub mod cli;
pub mod host;
pub mod hostfs;
pub mod launch;
pub mod layers;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod procfs;
pub mod profile;
pub mod report;
pub mod sandbox;
pub mod supervisor;
#[allow(unsafe_code)]
pub mod sys;
#[doc(hidden)]
pub mod testing;
pub mod text;
pub mod types;
