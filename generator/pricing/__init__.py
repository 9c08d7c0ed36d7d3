"""What each target costs a month for a traffic profile: price tables as data (source and date for
every number, overridable from a user file), one estimator per platform, and the break-even
between functions and a VM fleet. `mlgen plan --rps N` reads it; so does docs/choosing-a-target.md."""

from mlgen.pricing.costs import Inputs, break_even, estimates
from mlgen.pricing.estimate import Estimate, Traffic, Workload
from mlgen.pricing.fleets import Host, Node
from mlgen.pricing.report import CostRequest, docs_section, docs_section_for_examples

__all__ = ["CostRequest", "Estimate", "Host", "Inputs", "Node", "Traffic", "Workload", "break_even",
           "docs_section", "docs_section_for_examples", "estimates"]
