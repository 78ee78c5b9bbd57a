"""The alert pipeline (de-duplication, grouping, silences) and the sinks alerts are sent to."""
