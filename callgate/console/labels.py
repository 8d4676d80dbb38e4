"""The console's words for reason codes and verdicts, in French and in English."""

from __future__ import annotations

import re

__all__ = [
    "PURPOSES",
    "REASONS",
    "RULES",
    "chain_problem",
    "purpose_label",
    "reason_label",
    "rule_text",
]

# Short labels; the decision page shows the logged message and the rule's legal source.
REASONS: dict[str, tuple[str, str]] = {
    "APPOINTMENT": ("Rendez-vous convenu", "Agreed appointment"),
    "CAP_30_DAYS": ("Plafond de 4 appels sur 30 jours", "Cap of 4 calls in 30 days"),
    "CLI_FORBIDDEN": ("Numéro présenté interdit", "Forbidden caller ID"),
    "CLI_INVALID": ("Numéro présenté invalide", "Invalid caller ID"),
    "CLI_MISSING": ("Numéro présenté absent", "Missing caller ID"),
    "CLI_MOBILE": ("Numéro présenté mobile", "Mobile caller ID"),
    "CLI_NOT_ASSIGNED": ("Numéro présenté non attribué", "Caller ID not assigned"),
    "CLI_NOT_NPV": ("Numéro présenté hors plage NPV", "Caller ID outside NPV ranges"),
    "CLI_NO_COMPLIANT_NUMBER": ("Aucun numéro présentable conforme", "No compliant caller ID"),
    "CLI_REWRITTEN": ("Numéro présenté réécrit", "Caller ID rewritten"),
    "CONSENT_EXPIRED": ("Consentement expiré", "Consent expired"),
    "CONSENT_MISSING": ("Consentement absent", "No consent"),
    "CONSENT_REVOKED": ("Consentement retiré", "Consent revoked"),
    "CONTRACT_MISSING": ("Pas de contrat en cours", "No current contract"),
    "DAY_HOLIDAY": ("Jour férié", "Public holiday"),
    "DAY_WEEKEND": ("Week-end", "Weekend"),
    "DEST_INVALID": ("Numéro appelé invalide", "Invalid callee number"),
    "DEST_OUT_OF_SCOPE": ("Numéro appelé hors périmètre", "Callee out of scope"),
    "GATE_ERROR": ("Contrôle impossible (appel bloqué)", "Gate unavailable (call blocked)"),
    "HOURS_OUTSIDE": ("Hors des heures permises", "Outside permitted hours"),
    "INPUT_INVALID": ("Paramètre d'appel invalide", "Invalid call input"),
    "OPPOSITION_LISTED": ("Liste d'opposition", "Opposition list"),
    "REFUSAL_COOLDOWN": ("Refus récent (60 jours)", "Recent refusal (60 days)"),
    "SECTOR_BANNED": ("Secteur interdit de prospection", "Sector banned from prospecting"),
    "UNKNOWN_COMPANY": ("Entreprise inconnue", "Unknown company"),
}


def reason_label(code: str, lang: str = "fr") -> str:
    """A reason code's label in ``lang``; an unknown code stays as it is."""
    labels = REASONS.get(code)
    if labels is None:
        return code
    return labels[1] if lang == "en" else labels[0]


PURPOSES: dict[str, tuple[str, str]] = {
    "prospecting": ("Prospection", "Prospecting"),
    "contract": ("Contrat en cours", "Current contract"),
    "newspaper": ("Presse (abonnements)", "Newspapers (subscriptions)"),
    "service": ("Service (hors démarchage)", "Service (not solicitation)"),
}


def purpose_label(purpose: str, lang: str = "fr") -> str:
    """A call purpose's label in ``lang``; an unknown one stays as it is."""
    labels = PURPOSES.get(str(purpose))
    if labels is None:
        return str(purpose)
    return labels[1] if lang == "en" else labels[0]


# What callgate.auditlog says of a break, in French: its wording, with the numbers kept.
_PROBLEMS: tuple[tuple[str, str], ...] = (
    (r"edited: its content does not match its hash",
     "modifiée : son contenu ne correspond plus à son empreinte"),
    (r"edited: the callee number was changed", "modifiée : le numéro appelé a été changé"),
    (r"edited: it holds an invalid code point \(a lone surrogate\)",
     "modifiée : elle contient un caractère invalide"),
    (r"entries (\d+) to (\d+) before it were removed",
     r"les entrées \1 à \2 qui la précèdent ont été supprimées"),
    (r"out of order: seq (\d+) comes after seq (\d+)",
     r"hors d'ordre : seq \1 vient après seq \2"),
    (r"not a log entry: (.*)", r"ce n'est pas une entrée du journal (\1)"),
)  # fmt: skip


def chain_problem(problem: str, lang: str = "fr") -> str:
    """Why the chain breaks there, in ``lang``; a wording not known here stays as it is."""
    if lang == "en":
        return problem
    for pattern, french in _PROBLEMS:
        if re.fullmatch(pattern, problem):
            return re.sub(pattern, french, problem)
    return problem


# What each rule of the French pack checks, in French. Its legal source is not repeated
# here: it stays in the rule's docstring, the one place it is written.
RULES: dict[str, str] = {
    "caller_id": "garder un numéro présenté conforme, sinon le remplacer par un numéro du parc",
    "destination_in_scope": "les règles françaises ne jugent que les appels vers la France",
    "calling_hours": "du lundi au vendredi, de 10 h à 13 h et de 14 h à 20 h, hors jours fériés",
    "thirty_day_cap": "pas plus de 4 appels d'une entreprise à un même appelé en 30 jours",
    "refusal_cooldown": "« soixante jours calendaires révolus » après le refus de l'appelé",
    "sector_ban": "les secteurs interdits de prospection ne gardent que les appels sous contrat",
    "opposition_listed": "pas de prospection d'un appelé opposé (presse exemptée, L223-5)",
    "prospecting_consent": "la prospection exige le consentement préalable de l'appelé",
    "contract_in_progress": "un appel au titre d'un contrat exige un contrat en cours",
}


def rule_text(rule: str, checks: str, lang: str = "fr") -> str:
    """A rule's "source: what it checks" (its docstring, ``checks``), the second half in
    ``lang``; a rule not listed here keeps its docstring as it is."""
    source, separator, _ = checks.partition(": ")
    french = RULES.get(rule)
    if lang == "en" or french is None or not separator:
        return checks
    return f"{source} : {french}."
