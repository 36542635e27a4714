"""Every read model TaskFlow maintains, and which of them each kind of read depends on."""

from __future__ import annotations

from projections.activity import ActivityProjection
from projections.analytics.projection import AnalyticsProjection
from projections.audit import AuditIndexProjection
from projections.base import Projection
from projections.comments import CommentsProjection
from projections.projects import ProjectsProjection
from projections.tasks import TasksProjection
from projections.users import UsersProjection


def all_projections() -> list[Projection]:
    return [
        UsersProjection(),
        ProjectsProjection(),
        TasksProjection(),
        CommentsProjection(),
        ActivityProjection(),
        AnalyticsProjection(),
        AuditIndexProjection(),
    ]
