//! The `spaced` daemon: wires the components to one policy store.
