"""Where the service's models come from: the registry, checked against the audit trail.

Why a source object: the service re-checks the champion every few seconds (a promotion must be
picked up, an alias moved by hand must stop decisions), and loading a model (artifact download,
re-hash, training snapshot for the reason-code medians) costs far more than the check. The check
reads the alias and the chain's head; the models are reloaded only when either changed, and the
whole chain is verified again whenever it did.
"""

from __future__ import annotations

from pathlib import Path

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.governance.audit_chain import AuditChain, AuditEntry
from fin_assets.lib.governance.chain_state import promotions_started
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.registry_facts import champion_version
from fin_assets.lib.serving.champion import load_champion, load_shadow_challengers
from fin_assets.lib.serving.engine import ServingModels
from fin_assets.lib.training.model_registry import TrackingLocation


class GovernedModelSource:
    """Loads the champion (and shadows) of ``model_name`` when the alias or the chain moves."""

    def __init__(
        self,
        tracking: TrackingLocation,
        chain: AuditChain,
        model_name: str,
        policy: Policy,
        datasets_root: str | Path,
        *,
        shadows: bool = True,
    ) -> None:
        self.tracking = tracking
        self.chain = chain
        self.model_name = model_name
        self.policy = policy
        self.datasets_root = datasets_root
        self.shadows = shadows
        self._seen: tuple[int | None, str] | None = None
        # One client for every check: building one per check costs the watch thread (and the
        # requests it holds the GIL from) far more than the check itself.
        self._client = tracking.client()

    def _fingerprint(self) -> tuple[int | None, str]:
        head = self.chain.head()
        return (
            champion_version(self._client, self.model_name),
            head.entry_hash if head else "",
        )

    def __call__(self, serving: ServingModels | None) -> ServingModels:
        """The models to serve; ``serving`` itself when neither the alias nor the chain moved.

        Raises :class:`Refusal` when the chain does not verify or the champion is not the one
        the chain promoted (see ``champion.load_champion``). One state is not a refusal: the
        promotion saga moves the alias between its ``promotion_started`` and ``promoted``
        entries, so for a moment the alias names a version whose promotion is in progress. Then
        the models already serving (verified earlier) go on serving and the next check looks
        again; the new version never serves before its ``promoted`` entry exists.
        """
        fingerprint = self._fingerprint()
        if serving is not None and fingerprint == self._seen:
            return serving
        verified = self.chain.verify()
        if not verified.ok:
            raise Refusal(
                "chain_broken",
                f"the audit trail does not verify ({verified.reason}): no promotion in it can "
                "be trusted (run `fin-mlops audit verify`)",
            )
        entries = self.chain.entries()
        try:
            champion = load_champion(
                self.tracking, entries, self.model_name, self.policy, self.datasets_root
            )
        except Refusal:
            # In progress as first read (the refusal may come from a promotion finished since)
            # or as read again (the first read may predate it): keep serving, look again.
            if serving is not None and (
                self._promotion_in_progress(entries, fingerprint[0])
                or self._promotion_in_progress_now()
            ):
                return serving
            raise
        shadows = (
            load_shadow_challengers(
                self.tracking, entries, self.model_name, self.policy, self.datasets_root
            )
            if self.shadows
            else []
        )
        self._seen = fingerprint
        return ServingModels(champion=champion, shadows=tuple(shadows))

    def _promotion_in_progress_now(self) -> bool:
        """Whether the alias names the target of a promotion started and not yet finished,
        read afresh: the alias first, then the chain. The saga writes ``promotion_started``
        before it moves the alias, so a moved alias read first is always matched by its entry in
        the chain read after it (the entries read before the refusal may predate both)."""
        alias_version = champion_version(self._client, self.model_name)
        return self._promotion_in_progress(self.chain.entries(), alias_version)

    def _promotion_in_progress(self, entries: list[AuditEntry], alias_version: int | None) -> bool:
        """Whether the alias names the target of a promotion started and not yet finished."""
        subject = f"{self.model_name}/{alias_version}"
        return any(
            entry.subject == subject
            for entry in promotions_started(entries, self.model_name).values()
        )
