"""The tables of the system of record. Importing this package registers all of them on Base.metadata."""

from curation.models.batch_lease import BatchLease
from curation.models.evaluation import Evaluation
from curation.models.execution import Execution, ExecutionStatus
from curation.models.generation import Generation, GenerationStatus
from curation.models.label import Label, Verdict
from curation.models.language_model import LanguageModel, ModelRole
from curation.models.problem import Problem
from curation.models.prompt_template import PromptTemplate, TemplateStyle
from curation.models.rationale import Rationale, RationaleKind, RationaleOrigin
from curation.models.snapshot import Snapshot, SnapshotKind, SnapshotMember
from curation.models.synthesis_run import RunStatus, SynthesisRun
from curation.models.task import AnswerType, Split, SplitPurpose, Task
from curation.models.training_run import TrainingRun, TrainingStatus

__all__ = [
    "AnswerType",
    "BatchLease",
    "Evaluation",
    "Execution",
    "ExecutionStatus",
    "Generation",
    "GenerationStatus",
    "Label",
    "LanguageModel",
    "ModelRole",
    "Problem",
    "PromptTemplate",
    "Rationale",
    "RationaleKind",
    "RationaleOrigin",
    "RunStatus",
    "Snapshot",
    "SnapshotKind",
    "SnapshotMember",
    "Split",
    "SplitPurpose",
    "SynthesisRun",
    "Task",
    "TemplateStyle",
    "TrainingRun",
    "TrainingStatus",
    "Verdict",
]
