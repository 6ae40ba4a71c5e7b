"""Policy as code: the policy document, the gate that rules on plans, and permits.

Public surface: `load`, `parse`, `Policy`, `Gate`, `Review`, `Verifier`.
"""

from selfheal.policy.document import Policy, default_text, load, parse
from selfheal.policy.gate import Gate, Review, Verifier

__all__ = ["Gate", "Policy", "Review", "Verifier", "default_text", "load", "parse"]
