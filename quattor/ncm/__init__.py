"""ncm-ncd and its configuration components."""
