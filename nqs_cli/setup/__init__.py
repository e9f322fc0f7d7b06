"""From a validated config to built parts: the kind -> builder registry and the Problem."""
