pub mod auth;
pub mod demo;
pub mod devenv;
pub mod protocol;
