"""Study-specific glue: one subpackage per study."""
