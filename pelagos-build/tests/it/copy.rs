//! COPY/ADD end to end.
