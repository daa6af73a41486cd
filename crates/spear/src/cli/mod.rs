//! One module per area of the command tree.

pub mod household;
pub mod math;
pub mod model;
pub mod report;
pub mod train;
pub mod webshop;
