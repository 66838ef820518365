"""De-identification: the DICOM Basic Application Level Confidentiality Profile.

PS3.15 Annex E, Table E.1-1 lists the attributes that can identify a patient. The ingest
step applies this module to every data set right after reading its header, before any
other processing, and everything that leaves ingest (Redis values, Kafka events, logs,
reports) is built from the de-identified data set or from keyed hashes of its UIDs.

What :func:`deidentify` removes (action "X" for every entry: the data set is never
written back out, so no dummy values are needed):

* every attribute in :data:`BASIC_PROFILE_KEYWORDS` (the Table E.1-1 list), at any depth;
* every private element (odd group), and the curve (50xx) and overlay (60xx) groups;
* every person name (VR PN), application entity title (VR AE) and element of unknown
  content (VR UN), wherever it is;
* every UID (VR UI) except the class and encoding UIDs in :data:`KEPT_UIDS`;
* every date, time and date-time (VR DA/DT/TM) except Study Date at the top level, kept
  under the profile's *Retain Longitudinal Temporal Information with Full Dates Option*
  (E.3.6) because the study-level policy ("latest study") needs it. Nothing else of it
  (no time of day) is kept.

The athlete is linked only by the pseudonymous athlete id given at ingest. UIDs that the
pipeline needs for grouping (study, series, instance) are replaced by :func:`uid_hash`
before they are deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

PROFILE = "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile"
RETAIN_OPTION = "Retain Longitudinal Temporal Information with Full Dates Option (Study Date only)"
#: Deidentification Method (LO, at most 64 characters per value, so one value per part)
DEID_METHOD = ["DICOM PS3.15 E.1 Basic Application Confidentiality Profile",
               "Retain Longitudinal Full Dates Option (Study Date only)", "injury-monitor"]

#: PS3.15 Table E.1-1 attributes, by keyword (every one is a known DICOM keyword; the
#: repeating-group entries Overlay Comments/Data and Curve Data are removed by group).
BASIC_PROFILE_KEYWORDS: frozenset[str] = frozenset({
    "AccessionNumber", "AcquisitionComments", "AcquisitionContextSequence", "AcquisitionDate",
    "AcquisitionDateTime", "AcquisitionDeviceProcessingDescription", "AcquisitionFieldOfViewLabel",
    "AcquisitionProtocolDescription", "AcquisitionTime", "AcquisitionUID",
    "ActualHumanPerformersSequence", "AdditionalPatientHistory", "AddressTrial", "AdmissionID",
    "AdmittingDate", "AdmittingDiagnosesCodeSequence", "AdmittingDiagnosesDescription",
    "AdmittingTime", "AffectedSOPInstanceUID", "Allergies", "Arbitrary", "AuthorObserverSequence",
    "BranchOfService", "CassetteID", "ClinicalTrialCoordinatingCenterName",
    "ClinicalTrialProtocolEthicsCommitteeApprovalNumber",
    "ClinicalTrialProtocolEthicsCommitteeName", "ClinicalTrialSeriesDescription",
    "ClinicalTrialSeriesID", "ClinicalTrialSiteID", "ClinicalTrialSiteName",
    "ClinicalTrialSponsorName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
    "ClinicalTrialTimePointDescription", "ClinicalTrialTimePointID",
    "CommentsOnThePerformedProcedureStep", "ConcatenationUID",
    "ConfidentialityConstraintOnPatientDataDescription",
    "ConsultingPhysicianIdentificationSequence", "ConsultingPhysicianName",
    "ContentCreatorIdentificationCodeSequence", "ContentCreatorName", "ContentDate",
    "ContentSequence", "ContentTime", "ContextGroupExtensionCreatorUID", "ContributionDateTime",
    "ContributionDescription", "CountryOfResidence", "CreatorVersionUID", "CurrentPatientLocation",
    "CurveDate", "CurveTime", "CustodialOrganizationSequence", "DataSetTrailingPadding",
    "DateOfLastCalibration", "DateOfLastDetectorCalibration", "DateOfSecondaryCapture",
    "DateTimeOfLastCalibration", "DerivationDescription", "DetectorID", "DeviceDescription",
    "DeviceSerialNumber", "DeviceUID", "DigitalSignatureUID", "DigitalSignaturesSequence",
    "DimensionOrganizationUID", "DischargeDiagnosisDescription", "DistributionAddress",
    "DistributionName", "DoseReferenceUID", "EndAcquisitionDateTime", "EthnicGroup",
    "ExpectedCompletionDateTime", "FailedSOPInstanceUIDList", "FiducialUID",
    "FillerOrderNumberImagingServiceRequest", "FirstTreatmentDate", "FrameAcquisitionDateTime",
    "FrameComments", "FrameOfReferenceUID", "FrameReferenceDateTime", "GantryID", "GeneratorID",
    "GraphicAnnotationSequence", "HumanPerformerName", "HumanPerformerOrganization",
    "IconImageSequence", "IdentifyingComments", "ImageComments", "ImagePresentationComments",
    "ImagingServiceRequestComments", "Impressions", "InstanceCoercionDateTime",
    "InstanceCreationDate", "InstanceCreationTime", "InstanceCreatorUID", "InstanceOriginStatus",
    "InstitutionAddress", "InstitutionCodeSequence", "InstitutionName",
    "InstitutionalDepartmentName", "InstitutionalDepartmentTypeCodeSequence",
    "InsurancePlanIdentification", "IntendedRecipientsOfResultsIdentificationSequence",
    "InterpretationApproverSequence", "InterpretationAuthor", "InterpretationDiagnosisDescription",
    "InterpretationIDIssuer", "InterpretationRecorder", "InterpretationText",
    "InterpretationTranscriber", "IrradiationEventUID", "IssuerOfAdmissionID",
    "IssuerOfAdmissionIDSequence", "IssuerOfPatientID", "IssuerOfServiceEpisodeID",
    "IssuerOfServiceEpisodeIDSequence", "LargePaletteColorLookupTableUID", "LastMenstrualDate",
    "MAC", "ManufacturerDeviceClassUID", "MediaStorageSOPInstanceUID", "MedicalAlerts",
    "MedicalRecordLocator", "MilitaryRank", "ModifiedAttributesSequence",
    "ModifiedImageDescription", "ModifyingDeviceID", "NameOfPhysiciansReadingStudy",
    "NamesOfIntendedRecipientsOfResults", "Occupation", "OperatorIdentificationSequence",
    "OperatorsName", "OrderCallbackPhoneNumber", "OrderCallbackTelecomInformation",
    "OrderEnteredBy", "OrderEntererLocation", "OriginalAttributesSequence", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "OverlayDate", "OverlayTime",
    "PaletteColorLookupTableUID", "ParticipantSequence", "PatientAddress", "PatientAge",
    "PatientBirthDate", "PatientBirthName", "PatientBirthTime", "PatientComments", "PatientID",
    "PatientInstitutionResidence", "PatientInsurancePlanCodeSequence", "PatientMotherBirthName",
    "PatientName", "PatientPrimaryLanguageCodeSequence",
    "PatientPrimaryLanguageModifierCodeSequence", "PatientReligiousPreference", "PatientSex",
    "PatientSexNeutered", "PatientSize", "PatientState", "PatientTelecomInformation",
    "PatientTelephoneNumbers", "PatientTransportArrangements", "PatientWeight", "PerformedLocation",
    "PerformedProcedureStepDescription", "PerformedProcedureStepEndDate",
    "PerformedProcedureStepEndDateTime", "PerformedProcedureStepEndTime",
    "PerformedProcedureStepID", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartDateTime", "PerformedProcedureStepStartTime",
    "PerformedStationAETitle", "PerformedStationGeographicLocationCodeSequence",
    "PerformedStationName", "PerformedStationNameCodeSequence",
    "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName", "PersonAddress",
    "PersonIdentificationCodeSequence", "PersonName", "PersonTelecomInformation",
    "PersonTelephoneNumbers", "PhysicianApprovingInterpretation", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence",
    "PlacerOrderNumberImagingServiceRequest", "PlateID", "PreMedication", "PregnancyStatus",
    "ProcedureStepCancellationDateTime", "ProtocolName", "ReasonForStudy",
    "ReasonForTheImagingServiceRequest", "ReasonForVisit", "ReferencedDigitalSignatureSequence",
    "ReferencedFrameOfReferenceUID", "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID",
    "ReferencedImageSequence", "ReferencedPatientAliasSequence", "ReferencedPatientPhotoSequence",
    "ReferencedPatientSequence", "ReferencedPerformedProcedureStepSequence",
    "ReferencedSOPInstanceMACSequence", "ReferencedSOPInstanceUID", "ReferencedStudySequence",
    "ReferringPhysicianAddress", "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianName", "ReferringPhysicianTelephoneNumbers", "RegionOfResidence",
    "RelatedFrameOfReferenceUID", "RequestAttributesSequence", "RequestedContrastAgent",
    "RequestedProcedureComments", "RequestedProcedureDescription", "RequestedProcedureID",
    "RequestedProcedureLocation", "RequestedSOPInstanceUID", "RequestingPhysician",
    "RequestingService", "ResponsibleOrganization", "ResponsiblePerson", "ResultsComments",
    "ResultsDistributionListSequence", "ResultsIDIssuer", "ReviewDate", "ReviewTime",
    "ReviewerName", "SOPInstanceUID", "ScheduledHumanPerformersSequence",
    "ScheduledPatientInstitutionResidence", "ScheduledPerformingPhysicianIdentificationSequence",
    "ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepEndDate", "ScheduledProcedureStepEndTime",
    "ScheduledProcedureStepLocation", "ScheduledProcedureStepModificationDateTime",
    "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartDateTime",
    "ScheduledProcedureStepStartTime", "ScheduledStationAETitle",
    "ScheduledStationGeographicLocationCodeSequence", "ScheduledStationName",
    "ScheduledStationNameCodeSequence", "ScheduledStudyLocation", "ScheduledStudyLocationAETitle",
    "SecondaryCaptureDeviceID", "SeriesDate", "SeriesDescription", "SeriesInstanceUID",
    "SeriesTime", "ServiceEpisodeDescription", "ServiceEpisodeID", "SmokingStatus",
    "SourceApplicationEntityTitle", "SourceImageSequence", "SourceSerialNumber", "SpecialNeeds",
    "StationName", "StorageMediaFileSetUID", "StudyComments", "StudyDate", "StudyDescription",
    "StudyID", "StudyIDIssuer", "StudyInstanceUID", "StudyTime",
    "SynchronizationFrameOfReferenceUID", "TargetUID", "TelephoneNumberTrial",
    "TemplateExtensionCreatorUID", "TemplateExtensionOrganizationUID", "TextComments", "TextString",
    "TimezoneOffsetFromUTC", "TopicAuthor", "TopicKeywords", "TopicSubject", "TopicTitle",
    "TransactionUID", "TreatmentDate", "UID", "VerifyingObserverIdentificationCodeSequence",
    "VerifyingObserverName", "VerifyingObserverSequence", "VerifyingOrganization", "VisitComments",
})

#: Top-level attributes kept although the profile lists them (see the module docstring).
RETAINED_KEYWORDS: frozenset[str] = frozenset({"StudyDate"})

#: UIDs that name a class or an encoding, not an instance: kept.
KEPT_UIDS: frozenset[str] = frozenset({
    "SOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID", "ImplementationClassUID",
    "ReferencedSOPClassUID", "CodingSchemeUID",
})

_DROP_VRS = frozenset({"PN", "AE", "UN"})  # names, AE titles, and values of unknown content
_DATE_VRS = frozenset({"DA", "DT", "TM"})


@dataclass(frozen=True)
class DeidSummary:
    """What :func:`deidentify` removed: counts only, never values."""

    removed: int
    private: int


def _vr_of(tag: int, raw_vr: str | None) -> str:
    from pydicom.datadict import dictionary_VR

    if raw_vr:
        return str(raw_vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _keyword_of(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or ""


def _walk(ds: Dataset, *, top: bool, counts: list[int]) -> None:
    for tag in list(ds.keys()):
        group = tag >> 16
        if group % 2 == 1:
            del ds[tag]
            counts[1] += 1
            continue
        if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
            del ds[tag]
            counts[0] += 1
            continue
        elem = ds.get_item(tag, keep_deferred=True)  # a deferred value (pixel data) stays on disk
        vr = _vr_of(tag, elem.VR)
        keyword = _keyword_of(tag)
        retained = top and keyword in RETAINED_KEYWORDS
        drop = (
            (keyword in BASIC_PROFILE_KEYWORDS and not retained)
            or vr in _DROP_VRS
            or (vr == "UI" and keyword not in KEPT_UIDS)
            or (vr in _DATE_VRS and not retained)
        )
        if drop:
            del ds[tag]
            counts[0] += 1
        elif vr == "SQ":
            for item in ds[tag].value or []:
                _walk(item, top=False, counts=counts)


def deidentify(ds: Dataset) -> DeidSummary:
    """Apply the basic profile to ``ds`` (and its file meta) in place; return counts.

    Pixel data is not read: deferred values stay deferred.
    """
    counts = [0, 0]
    _walk(ds, top=True, counts=counts)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _walk(meta, top=False, counts=counts)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEID_METHOD
    return DeidSummary(removed=counts[0], private=counts[1])


def uid_hash(uid: str, key: bytes | None = None) -> str:
    """SHA-256 hex of a UID; HMAC-SHA-256 with ``key`` when one is given.

    Without a key, anyone holding the original UID can recognise its hash (useful to
    deduplicate, not to hide). Give a site secret to make the hash a pseudonym.
    """
    data = str(uid).strip().encode("ascii", "replace")
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


_CS_BAD = re.compile(r"[^A-Z0-9_]+")


def code_string(value: object, default: str = "UNKNOWN", max_len: int = 16) -> str:
    """Normalise a code string (Modality, Body Part Examined): A-Z, 0-9 and _, at most 16."""
    if value is None:
        return default
    text = _CS_BAD.sub("_", str(value).strip().upper()).strip("_")[:max_len]
    return text or default
