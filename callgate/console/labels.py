"""The console's words for reason codes and verdicts, in French and in English."""

from __future__ import annotations

__all__ = ["PURPOSES", "REASONS", "purpose_label", "reason_label"]

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
