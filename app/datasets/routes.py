"""HTTP routes of datasets: upload (multipart `file`: arrays, texts or an image archive), get, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile, status

from app.auth.deps import ReadScope, WriteScope
from app.datasets import service
from app.datasets.schemas import DatasetOut
from app.deps import SessionDep, SettingsDep, StoreDep
from app.errors import TooLarge
from app.limits import UnpackLimits

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[ReadScope])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut, dependencies=[WriteScope])
def upload_dataset(
    file: Annotated[UploadFile, File()], session: SessionDep, store: StoreDep, settings: SettingsDep
) -> DatasetOut:
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise TooLarge(f"the file is larger than the limit of {settings.max_upload_bytes} bytes"
                       " (LIFELONG_MAX_UPLOAD_BYTES)")
    dataset = service.upload_dataset(session, store, data, file.filename, settings.max_upload_bytes,
                                     UnpackLimits.of(settings))
    session.commit()
    return DatasetOut.model_validate(dataset, from_attributes=True)


@router.get("", response_model=list[DatasetOut])
def list_datasets(session: SessionDep) -> list[DatasetOut]:
    return [DatasetOut.model_validate(d, from_attributes=True) for d in service.list_datasets(session)]


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep) -> DatasetOut:
    return DatasetOut.model_validate(service.get_dataset(session, dataset_id), from_attributes=True)
