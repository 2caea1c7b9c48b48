//! Placeholder: the Redis storage plugin is being written.
