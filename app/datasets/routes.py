"""HTTP routes of datasets: upload (multipart `file`: arrays, texts or an image archive, and an optional
`retain_until`), get, list, delete."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from app.auth.deps import ReadScope, WriteScope, require_every_model
from app.blobs.collect import CollectorBusy, exclusive_collection
from app.blobs.purge import purge_deleted_blobs
from app.datasets import service
from app.datasets.deletion import delete_dataset as delete_dataset_row
from app.datasets.schemas import DatasetOut
from app.deps import SessionDep, SettingsDep, StoreDep
from app.errors import TooLarge
from app.limits import UnpackLimits

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[ReadScope])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut, dependencies=[WriteScope])
def upload_dataset(
    file: Annotated[UploadFile, File()], session: SessionDep, store: StoreDep, settings: SettingsDep,
    retain_until: Annotated[datetime | None, Form(description="delete the dataset at this time (ISO 8601; UTC "
                                                              "when it names no zone), whatever the retention "
                                                              "setting says")] = None,
) -> DatasetOut:
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise TooLarge(f"the file is larger than the limit of {settings.max_upload_bytes} bytes"
                       " (LIFELONG_MAX_UPLOAD_BYTES)")
    dataset = service.upload_dataset(session=session, store=store, data=data, filename=file.filename,
                                     max_bytes=settings.max_upload_bytes, limits=UnpackLimits.of(settings),
                                     retain_until=retain_until)
    session.commit()
    return DatasetOut.model_validate(dataset, from_attributes=True)


# Datasets belong to no model (one row per content, shared by whoever uploads the same bytes): a key
# scoped to models uploads, reads and deletes them by id, but the list would name every team's uploads.
@router.get("", response_model=list[DatasetOut], dependencies=[require_every_model("listing datasets")])
def list_datasets(session: SessionDep) -> list[DatasetOut]:
    return [DatasetOut.model_validate(d, from_attributes=True) for d in service.list_datasets(session)]


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep) -> DatasetOut:
    return DatasetOut.model_validate(service.get_dataset(session=session, dataset_id=dataset_id), from_attributes=True)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               dependencies=[WriteScope])
def delete_dataset(dataset_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep) -> Response:
    """The row goes at once (409 while a queued or running job needs the data); the blob right after,
    unless another dataset row names the same blob. A blob that cannot go now (the store fails, or a
    `lifelong blobs gc` holds the collector's lock) is left to the sweeper and the next gc."""
    delete_dataset_row(session, dataset_id, reason="request")
    session.commit()
    try:
        with exclusive_collection(settings, session.get_bind()):
            purge_deleted_blobs(session, store)
    except CollectorBusy:
        log.info("dataset %s deleted; a blob collection is running, so the sweeper purges its blob", dataset_id)
    except Exception:  # noqa: BLE001 - the deletion is committed: the client's request succeeded
        log.warning("dataset %s deleted; its blob is left for the sweeper to purge", dataset_id, exc_info=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
