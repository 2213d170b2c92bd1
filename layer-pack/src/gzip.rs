//! gzip (in progress)
