//! The server's side of geography (the rest is the `dispatch-geo` crate): live unit positions
//! fed from the device channel, recommendations ranked by drive time, the basemap it serves
//! and its style, and the agency's premises.

pub mod basemap;
pub mod label_fonts;
pub mod live;
pub mod map_style;
pub mod premise;
pub mod premise_import;
pub mod recommend;

pub use live::LiveUnits;
