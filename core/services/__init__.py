"""Changes of state. Each public function: check permission, change, audit, commit once."""
