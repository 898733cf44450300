"""Workflows definitions in the published JSON format, as users paste them (used by tests and benchmarks)."""

from typing import Any

from services.client.payloads import detection_step, workflow_init

MODEL = "yolov3-tiny/coco-416"
SMALL_MODEL = "yolov3-tiny/coco-320"
CLASSIFIER = "demo-colours/1"  # make setup builds it (python -m services.worker.models build-demo-classifier)
MULTI_LABEL = "demo-colours-present/1"  # make setup builds it (... build-demo-multi-label): which of R/G/B are present
IMAGE = {"type": "WorkflowImage", "name": "image"}


def detect(name: str = "model", model_id: str = MODEL, images: str = "$inputs.image", **extra: Any) -> dict[str, Any]:
    return detection_step(name, model_id, images, **extra)


def detection_only() -> dict[str, Any]:
    return {"version": "1.0", "inputs": [IMAGE], "steps": [detect(confidence=0.3)],
            "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"}]}


def counting(line: list[list[int]], image_output: bool = True) -> dict[str, Any]:
    """detect people -> track -> count at a line -> boxes + tracker-id labels (+ the annotated frame)."""
    outputs = [
        {"type": "JsonField", "name": "count_in", "selector": "$steps.line_counter.count_in"},
        {"type": "JsonField", "name": "count_out", "selector": "$steps.line_counter.count_out"},
        {"type": "JsonField", "name": "tracked", "selector": "$steps.tracker.tracked_detections"},
    ]
    if image_output:
        outputs.append({"type": "JsonField", "name": "annotated", "selector": "$steps.labels.image"})
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "classes", "default_value": ["person"]}],
        "steps": [
            detect(confidence=0.3, class_filter="$inputs.classes"),
            {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.image",
             "detections": "$steps.model.predictions"},
            {"type": "roboflow_core/line_counter@v2", "name": "line_counter", "image": "$inputs.image",
             "detections": "$steps.tracker.tracked_detections", "line_segment": line,
             "triggering_anchor": "CENTER"},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.tracker.tracked_detections"},
            {"type": "roboflow_core/label_visualization@v1", "name": "labels", "image": "$steps.boxes.image",
             "predictions": "$steps.tracker.tracked_detections", "text": "Tracker Id"},
        ],
        "outputs": outputs,
    }


def time_in_zone(zone: list[list[int]]) -> dict[str, Any]:
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/byte_tracker@v2", "name": "tracker", "image": "$inputs.image",
             "detections": "$steps.model.predictions"},
            {"type": "roboflow_core/time_in_zone@v2", "name": "zone_timer", "image": "$inputs.image",
             "detections": "$steps.tracker.tracked_detections", "zone": zone, "triggering_anchor": "CENTER"},
        ],
        "outputs": [{"type": "JsonField", "name": "timed", "selector": "$steps.zone_timer.timed_detections"}],
    }


def motion(history: int) -> dict[str, Any]:
    """Motion by background subtraction (nothing reported for the first ``history`` frames), and the people."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/motion_detection@v1", "name": "motion", "image": "$inputs.image",
             "history": history, "minimum_contour_area": 200},
        ],
        "outputs": [
            {"type": "JsonField", "name": "motion", "selector": "$steps.motion.motion"},
            {"type": "JsonField", "name": "alarm", "selector": "$steps.motion.alarm"},
            {"type": "JsonField", "name": "moving", "selector": "$steps.motion.detections"},
            {"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
        ],
    }


def codes() -> dict[str, Any]:
    """QR codes and barcodes read on every frame (no model), the QR codes boxed on the frame."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            {"type": "roboflow_core/qr_code_detector@v1", "name": "qr", "images": "$inputs.image"},
            {"type": "roboflow_core/barcode_detector@v1", "name": "barcodes", "images": "$inputs.image"},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.qr.predictions", "thickness": 4},
        ],
        "outputs": [
            {"type": "JsonField", "name": "qr", "selector": "$steps.qr.predictions"},
            {"type": "JsonField", "name": "barcodes", "selector": "$steps.barcodes.predictions"},
            {"type": "JsonField", "name": "boxed", "selector": "$steps.boxes.image"},
        ],
    }


def path_deviation(path: list[list[int]]) -> dict[str, Any]:
    """Track people, measure how far each one's path is from ``path`` (Fréchet distance), draw the path, and pad
    each person's box by 10 px left and right, 5 px up and down (detection_offset), and one box around them all
    (detections_merge)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "path"}],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/byte_tracker@v2", "name": "tracker", "image": "$inputs.image",
             "detections": "$steps.model.predictions"},
            {"type": "roboflow_core/path_deviation_analytics@v2", "name": "deviation", "image": "$inputs.image",
             "detections": "$steps.tracker.tracked_detections", "reference_path": "$inputs.path"},
            {"type": "roboflow_core/reference_path_visualization@v1", "name": "drawn_path", "image": "$inputs.image",
             "reference_path": "$inputs.path", "color": "#FF0000", "thickness": 9},
            {"type": "roboflow_core/detection_offset@v1", "name": "padded", "predictions": "$steps.model.predictions",
             "offset_width": 20, "offset_height": 10},
            {"type": "roboflow_core/detections_merge@v1", "name": "group", "predictions": "$steps.model.predictions",
             "class_name": "group"},
        ],
        "outputs": [
            {"type": "JsonField", "name": "deviations", "selector": "$steps.deviation.path_deviation_detections"},
            {"type": "JsonField", "name": "drawn", "selector": "$steps.drawn_path.image"},
            {"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
            {"type": "JsonField", "name": "padded", "selector": "$steps.padded.predictions"},
            {"type": "JsonField", "name": "group", "selector": "$steps.group.predictions"},
        ],
    }


def speed_estimation(road: list[list[int]], width: int, length: int) -> dict[str, Any]:
    """Speed estimation: track people, move them from the image onto the ``road`` quadrilateral's rectangle of
    ``width`` x ``length`` metres (perspective_correction), and measure their velocity there, in metres a second."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.image",
             "detections": "$steps.model.predictions"},
            {"type": "roboflow_core/perspective_correction@v1", "name": "perspective", "images": "$inputs.image",
             "predictions": "$steps.tracker.tracked_detections", "perspective_polygons": road,
             "transformed_rect_width": width, "transformed_rect_height": length},
            {"type": "roboflow_core/velocity@v1", "name": "velocity", "image": "$inputs.image",
             "detections": "$steps.perspective.corrected_coordinates"},
        ],
        "outputs": [
            {"type": "JsonField", "name": "people", "selector": "$steps.tracker.tracked_detections"},
            {"type": "JsonField", "name": "on_road", "selector": "$steps.perspective.corrected_coordinates"},
            {"type": "JsonField", "name": "velocities", "selector": "$steps.velocity.velocity_detections"},
        ],
    }


def webhook(url: str) -> dict[str, Any]:
    """Counts people and posts the count to a webhook at most once a second (fire and forget)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "url"}],
        "steps": [
            detect(confidence=0.3),
            {"type": "roboflow_core/property_definition@v1", "name": "count", "data": "$steps.model.predictions",
             "operations": [{"type": "SequenceLength"}]},
            {"type": "roboflow_core/webhook_sink@v1", "name": "notify", "url": "$inputs.url", "method": "POST",
             "json_payload": {"people": "$steps.count.output", "camera": "entrance"},
             "cooldown_seconds": 1, "fire_and_forget": True},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.count.output"},
                    {"type": "JsonField", "name": "webhook", "selector": "$steps.notify.*"}],
    }


def slack() -> dict[str, Any]:
    """Posts the number of people in view to a Slack channel with the frame's detections as a CSV file, inline
    (not fire and forget) and at most once every 2 seconds."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "slack_token"}],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/csv_formatter@v1", "name": "csv", "columns_data": {
                "people": "$steps.model.predictions"}, "columns_operations": {"people": [{"type": "SequenceLength"}]}},
            {"type": "roboflow_core/slack_notification@v1", "name": "notify", "slack_token": "$inputs.slack_token",
             "channel": "C0CAMERAS", "message": "{{ $parameters.people }} people at the entrance",
             "message_parameters": {"people": "$steps.model.predictions"},
             "message_parameters_operations": {"people": [{"type": "SequenceLength"}]},
             "attachments": {"people.csv": "$steps.csv.csv_content"}, "fire_and_forget": False,
             "cooldown_seconds": 2, "cooldown_session_key": "entrance-camera"},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "slack", "selector": "$steps.notify.*"}],
    }


def sms() -> dict[str, Any]:
    """Texts the number of people in view through Twilio, once (15 minutes of cooldown)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "sid"}, {"type": "WorkflowParameter", "name": "token"}],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/twilio_sms_notification@v1", "name": "sms", "twilio_account_sid": "$inputs.sid",
             "twilio_auth_token": "$inputs.token", "message": "{{ $parameters.people }} people at the entrance",
             "sender_number": "+15550001111", "receiver_number": "+15550002222",
             "message_parameters": {"people": "$steps.model.predictions"},
             "message_parameters_operations": {"people": [{"type": "SequenceLength"}]},
             "fire_and_forget": False, "cooldown_seconds": 900, "cooldown_session_key": "entrance-sms"},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "sms", "selector": "$steps.sms.message"}],
    }


def email(smtp_port: int) -> dict[str, Any]:
    """Mails the number of people in view, at most once a minute (fire and forget, over TLS)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "password"}],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/property_definition@v1", "name": "count", "data": "$steps.model.predictions",
             "operations": [{"type": "SequenceLength"}]},
            {"type": "roboflow_core/email_notification@v1", "name": "notify", "subject": "People at the gate",
             "sender_email": "alerts@example.com", "receiver_email": "ops@example.com",
             "message": "people in view: {{ $parameters.people }}",
             "message_parameters": {"people": "$steps.count.output"},
             "smtp_server": "127.0.0.1", "smtp_port": smtp_port, "sender_email_password": "$inputs.password",
             "cooldown_seconds": 60},
        ],
        "outputs": [{"type": "JsonField", "name": "email", "selector": "$steps.notify.*"}],
    }


def email_v2(smtp_port: int, provider: str | None = "Custom SMTP") -> dict[str, Any]:
    """email_notification@v2 through the user's SMTP server (``provider`` None: the manifest's default, Roboflow's
    managed proxy): an HTML mail counting the people in view, the annotated frame inline and attached, once a
    minute, inline (not fire and forget)."""
    notify = {"type": "roboflow_core/email_notification@v2", "name": "notify", "subject": "People at the gate",
              "receiver_email": ["ops@example.com"],
              "message": "<b>{{ $parameters.people }}</b> in view\n{{ $parameters.view }}",
              "message_parameters": {"people": "$steps.model.predictions", "view": "$steps.boxes.image"},
              "message_parameters_operations": {"people": [{"type": "SequenceLength"}]},
              "attachments": {"frame": "$steps.boxes.image"}, "sender_email": "alerts@example.com",
              "smtp_server": "127.0.0.1", "smtp_port": smtp_port, "sender_email_password": "$inputs.password",
              "fire_and_forget": False, "cooldown_seconds": 60}
    if provider is not None:
        notify["email_provider"] = provider
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "password"}],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.model.predictions"},
            notify,
        ],
        "outputs": [{"type": "JsonField", "name": "email", "selector": "$steps.notify.*"},
                    {"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"}],
    }


def csv_log(directory: str) -> dict[str, Any]:
    """One CSV row per frame (people in view, wall-clock timestamp) appended to a log file."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/csv_formatter@v1", "name": "row",
             "columns_data": {"people": "$steps.model.predictions"},
             "columns_operations": {"people": [{"type": "SequenceLength"}]}},
            {"type": "roboflow_core/local_file_sink@v1", "name": "writer", "content": "$steps.row.csv_content",
             "file_type": "csv", "output_mode": "append_log", "target_directory": directory,
             "file_name_prefix": "people"},
        ],
        "outputs": [{"type": "JsonField", "name": "sink", "selector": "$steps.writer.*"}],
    }


def s3_upload() -> dict[str, Any]:
    """To an S3 bucket: each frame with its people boxed, as a JPEG object, and each frame's detections as a JSON
    line of an append log (a new object every 10 frames); the bucket and the keys are parameters."""
    store = {"bucket_name": "$inputs.bucket", "aws_access_key_id": "$inputs.key_id",
             "aws_secret_access_key": "$inputs.secret", "aws_region": "eu-west-1"}
    return {
        "version": "1.0",
        "inputs": [IMAGE, *({"type": "WorkflowParameter", "name": name} for name in ("bucket", "key_id", "secret"))],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.model.predictions"},
            {"type": "roboflow_core/property_definition@v1", "name": "results", "data": "$steps.model.predictions",
             "operations": [{"type": "DetectionsToDictionary"}, {"type": "ConvertDictionaryToJSON"}]},
            {"type": "roboflow_core/s3_sink@v1", "name": "frames", "content": "$steps.boxes.image",
             "output_mode": "separate_files", "s3_prefix": "gate/frames", "file_name_prefix": "frame", **store},
            {"type": "roboflow_core/s3_sink@v1", "name": "log", "content": "$steps.results.output", "file_type": "json",
             "output_mode": "append_log", "max_entries_per_file": 10, "s3_prefix": "gate/results/",
             "file_name_prefix": "people", **store},
        ],
        "outputs": [{"type": "JsonField", "name": "frames", "selector": "$steps.frames.*"},
                    {"type": "JsonField", "name": "log", "selector": "$steps.log.*"},
                    {"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"}],
    }


def sahi() -> dict[str, Any]:
    """image_slicer -> detection on every slice -> detections_stitch (NMS) back onto the frame."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            {"type": "roboflow_core/image_slicer@v1", "name": "slicer", "image": "$inputs.image",
             "slice_width": 512, "slice_height": 512, "overlap_ratio_width": 0.2, "overlap_ratio_height": 0.2},
            detect("slice_model", images="$steps.slicer.slices", confidence=0.3),
            {"type": "roboflow_core/detections_stitch@v1", "name": "stitch", "reference_image": "$inputs.image",
             "predictions": "$steps.slice_model.predictions", "overlap_filtering_strategy": "nms"},
        ],
        "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.stitch.predictions"}],
    }


def consensus() -> dict[str, Any]:
    """Two models (416 and 320 input) vote; a box needs both."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect("big", confidence=0.3),
            detect("small", model_id=SMALL_MODEL, confidence=0.3),
            {"type": "DetectionsConsensus", "name": "consensus",
             "predictions_batches": ["$steps.big.predictions", "$steps.small.predictions"],
             "required_votes": 2},
        ],
        "outputs": [{"type": "JsonField", "name": "agreed", "selector": "$steps.consensus.predictions"},
                    {"type": "JsonField", "name": "present", "selector": "$steps.consensus.object_present"}],
    }


def trackers_side_by_side() -> dict[str, Any]:
    """detect people -> the trackers package's SORT, OC-SORT and BoT-SORT (camera motion compensation on)."""
    trackers = {"sort": {}, "ocsort": {}, "botsort": {"enable_cmc": True, "cmc_method": "sparseOptFlow"}}
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            *({"type": f"roboflow_core/trackers_{name}@v1", "name": name, "image": "$inputs.image",
               "detections": "$steps.model.predictions", **options} for name, options in trackers.items()),
        ],
        "outputs": [
            *({"type": "JsonField", "name": name, "selector": f"$steps.{name}.tracked_detections"}
              for name in trackers),
            *({"type": "JsonField", "name": f"{name}_new", "selector": f"$steps.{name}.new_instances"}
              for name in trackers),
        ],
    }


def tracked_three_ways() -> dict[str, Any]:
    """detect -> ByteTrack, then three blocks on the tracks: track_class_lock (each track's class and confidence
    held once it has 3 votes; no re-attachment: a new id starts its own votes), stabilize_detections (defaults:
    each box averaged with its previous one, a track missed for a frame or two filled in where its velocity takes
    it) and heatmap_visualization (where they walked; what stands still adds no heat), beside the frame as it came."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowVideoMetadata", "name": "video_metadata"}],
        "steps": [
            detect(confidence=0.3),
            {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.image",
             "detections": "$steps.model.predictions"},
            {"type": "roboflow_core/track_class_lock@v1", "name": "class_lock", "image": "$inputs.image",
             "detections": "$steps.tracker.tracked_detections", "min_votes": 3, "lead_margin": 0,
             "vote_confidence": 0.3, "reattach_window": 0},
            {"type": "roboflow_core/stabilize_detections@v1", "name": "stabilizer", "image": "$inputs.image",
             "detections": "$steps.tracker.tracked_detections"},
            {"type": "roboflow_core/heatmap_visualization@v1", "name": "heatmap", "image": "$inputs.image",
             "predictions": "$steps.tracker.tracked_detections", "metadata": "$inputs.video_metadata"},
        ],
        "outputs": [
            {"type": "JsonField", "name": "tracked", "selector": "$steps.tracker.tracked_detections"},
            {"type": "JsonField", "name": "locked", "selector": "$steps.class_lock.tracked_detections"},
            {"type": "JsonField", "name": "stable", "selector": "$steps.stabilizer.tracked_detections"},
            {"type": "JsonField", "name": "heat", "selector": "$steps.heatmap.image"},
            {"type": "JsonField", "name": "frame", "selector": "$inputs.image"},
        ],
    }


def combined_and_filtered() -> dict[str, Any]:
    """Two models' detections combined, then a confidence threshold per class (people 0.6, others 0.3)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect("big", confidence=0.3),
            detect("small", SMALL_MODEL, confidence=0.3),
            {"type": "roboflow_core/detections_combine@v1", "name": "both", "prediction_one": "$steps.big.predictions",
             "prediction_two": "$steps.small.predictions"},
            {"type": "roboflow_core/per_class_confidence_filter@v1", "name": "sure",
             "predictions": "$steps.both.predictions", "class_thresholds": {"person": 0.6}, "default_threshold": 0.3},
        ],
        "outputs": [{"type": "JsonField", "name": name, "selector": f"$steps.{name}.predictions"}
                    for name in ("big", "small", "both", "sure")],
    }


def upside_down_camera() -> dict[str, Any]:
    """A camera mounted upside down: each frame turned 180 degrees, then the people detected on it."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            {"type": "roboflow_core/image_preprocessing@v1", "name": "upright", "image": "$inputs.image",
             "task_type": "rotate", "rotation_degrees": 180},
            detect(images="$steps.upright.image", confidence=0.3, class_filter=["person"]),
        ],
        "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"}],
    }


def imaging(text: str) -> dict[str, Any]:
    """The frame's lens distortion removed, its left and right 60 % stitched back together, a QR code of ``text``."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            {"type": "roboflow_core/camera-calibration@v1", "name": "calibration", "image": "$inputs.image",
             "fx": 700.0, "fy": 700.0, "cx": 384.0, "cy": 288.0, "k1": -0.1, "k2": 0.01, "k3": 0.0, "p1": 0.0,
             "p2": 0.0},
            {"type": "roboflow_core/relative_static_crop@v1", "name": "left", "image": "$inputs.image",
             "x_center": 0.3, "y_center": 0.5, "width": 0.6, "height": 1.0},
            {"type": "roboflow_core/relative_static_crop@v1", "name": "right", "image": "$inputs.image",
             "x_center": 0.7, "y_center": 0.5, "width": 0.6, "height": 1.0},
            {"type": "roboflow_core/stitch_images@v1", "name": "stitch", "image1": "$steps.left.crops",
             "image2": "$steps.right.crops"},
            {"type": "roboflow_core/qr_code_generator@v1", "name": "qr", "text": text},
        ],
        "outputs": [{"type": "JsonField", "name": "calibrated", "selector": "$steps.calibration.calibrated_image"},
                    {"type": "JsonField", "name": "stitched", "selector": "$steps.stitch.stitched_image"},
                    {"type": "JsonField", "name": "qr_code", "selector": "$steps.qr.qr_code"}],
    }


def classical_cv_shapes_and_motion() -> dict[str, Any]:
    """No model: grayscale -> blur -> Otsu threshold -> contours (counted); and background subtraction -> opening
    then closing -> contours (the moving blobs, counted)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            {"type": "roboflow_core/convert_grayscale@v1", "name": "gray", "image": "$inputs.image"},
            {"type": "roboflow_core/image_blur@v1", "name": "blur", "image": "$steps.gray.image",
             "blur_type": "gaussian", "kernel_size": 5},
            {"type": "roboflow_core/threshold@v1", "name": "binary", "image": "$steps.blur.image",
             "threshold_type": "otsu", "thresh_value": 127},
            {"type": "roboflow_core/contours_detection@v1", "name": "shapes", "image": "$steps.binary.image"},
            {"type": "roboflow_core/background_subtraction@v1", "name": "background", "image": "$inputs.image",
             "threshold": 16, "history": 30},
            {"type": "roboflow_core/morphological_transformation@v2", "name": "cleaned",
             "image": "$steps.background.image", "kernel_size": 5},
            {"type": "roboflow_core/contours_detection@v1", "name": "moving", "image": "$steps.cleaned.image"},
        ],
        "outputs": [
            {"type": "JsonField", "name": "shapes", "selector": "$steps.shapes.number_contours"},
            {"type": "JsonField", "name": "binary", "selector": "$steps.binary.image"},
            {"type": "JsonField", "name": "mask", "selector": "$steps.background.image"},
            {"type": "JsonField", "name": "moving", "selector": "$steps.moving.number_contours"},
        ],
    }


def camera_checks() -> dict[str, Any]:
    """No model but the detector: how sharp the camera is (overall and on each person), the frame's dominant
    colour and how many pixels have it, and the gap between the two most confident people."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/camera_focus@v2", "name": "focus", "image": "$inputs.image",
             "detections": "$steps.model.predictions"},
            {"type": "roboflow_core/dominant_color@v1", "name": "dominant", "image": "$inputs.image"},
            {"type": "roboflow_core/pixel_color_count@v1", "name": "dominant_pixels", "image": "$inputs.image",
             "target_color": "$steps.dominant.rgb_color", "tolerance": 10},
            {"type": "roboflow_core/distance_measurement@v1", "name": "gap", "predictions": "$steps.model.predictions",
             "object_1_class_name": "person", "object_2_class_name": "person", "reference_axis": "horizontal",
             "calibration_method": "pixel to centimeter", "pixel_ratio": 10},
        ],
        "outputs": [
            {"type": "JsonField", "name": "focus", "selector": "$steps.focus.focus_measure"},
            {"type": "JsonField", "name": "people_focus", "selector": "$steps.focus.bbox_focus_measures"},
            {"type": "JsonField", "name": "aids", "selector": "$steps.focus.image"},
            {"type": "JsonField", "name": "colour", "selector": "$steps.dominant.rgb_color"},
            {"type": "JsonField", "name": "colour_pixels", "selector": "$steps.dominant_pixels.matching_pixels_count"},
            {"type": "JsonField", "name": "gap_px", "selector": "$steps.gap.distance_pixel"},
            {"type": "JsonField", "name": "gap_cm", "selector": "$steps.gap.distance_cm"},
            {"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
        ],
    }


def classify_crops(version: int = 2) -> dict[str, Any]:
    """Detect people -> crop each one -> classify each crop's dominant colour (a model per crop) -> each person
    takes its crop's colour as its class (the two-stage workflow of the reference's gallery)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
             "predictions": "$steps.model.predictions"},
            {"type": f"roboflow_core/roboflow_classification_model@v{version}", "name": "colour",
             "images": "$steps.crops.crops", "model_id": CLASSIFIER},
            {"type": "roboflow_core/detections_classes_replacement@v1", "name": "classes_replacement",
             "object_detection_predictions": "$steps.model.predictions",
             "classification_predictions": "$steps.colour.predictions"},
            {"type": "roboflow_core/dimension_collapse@v1", "name": "collapse", "data": "$steps.colour.predictions"},
            {"type": "roboflow_core/property_definition@v1", "name": "classified", "data": "$steps.collapse.output",
             "operations": [{"type": "SequenceLength"}]},
        ],
        "outputs": [{"type": "JsonField", "name": "colours", "selector": "$steps.colour.predictions"},
                    {"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "coloured", "selector": "$steps.classes_replacement.predictions"},
                    {"type": "JsonField", "name": "classified", "selector": "$steps.classified.output"}],
    }


def painted_background_and_labels() -> dict[str, Any]:
    """Detect people -> everything but them painted magenta (background_color) -> the frame's dominant colour
    (a classifier on the whole frame) as a label at the top left -> the people count as text at the bottom right."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/background_color_visualization@v1", "name": "background",
             "image": "$inputs.image", "predictions": "$steps.model.predictions", "color": "#FF00FF", "opacity": 1.0},
            {"type": "roboflow_core/roboflow_classification_model@v2", "name": "colour", "images": "$inputs.image",
             "model_id": CLASSIFIER},
            {"type": "roboflow_core/classification_label_visualization@v1", "name": "label",
             "image": "$steps.background.image", "predictions": "$steps.colour.predictions",
             "text": "Class and Confidence"},
            {"type": "roboflow_core/text_display@v1", "name": "count", "image": "$steps.label.image",
             "text": "people: {{ $parameters.people }}", "text_parameters": {"people": "$steps.model.predictions"},
             "text_parameters_operations": {"people": [{"type": "SequenceLength"}]}, "text_color": "BLACK",
             "background_color": "WHITE", "anchor": "bottom_right", "offset_x": -10, "offset_y": -10},
        ],
        "outputs": [{"type": "JsonField", "name": "drawn", "selector": "$steps.count.image"},
                    {"type": "JsonField", "name": "frame", "selector": "$inputs.image"},
                    {"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "colour", "selector": "$steps.colour.predictions"}],
    }


def crowd_or_zero() -> dict[str, Any]:
    """Detect people; only on frames with at least ``crowd`` of them (continue_if) count them; merge that gated
    branch with first_non_empty_or_default: the count on a crowded frame, 0 on the others."""
    at_least = {"type": "StatementGroup", "statements": [{
        "type": "BinaryStatement",
        "left_operand": {"type": "DynamicOperand", "operand_name": "people",
                         "operations": [{"type": "SequenceLength"}]},
        "comparator": {"type": "(Number) >="},
        "right_operand": {"type": "DynamicOperand", "operand_name": "crowd"}}]}
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "crowd", "default_value": 5}],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/continue_if@v1", "name": "if_crowded", "condition_statement": at_least,
             "evaluation_parameters": {"people": "$steps.model.predictions", "crowd": "$inputs.crowd"},
             "next_steps": ["$steps.count"]},
            {"type": "roboflow_core/property_definition@v1", "name": "count", "data": "$steps.model.predictions",
             "operations": [{"type": "SequenceLength"}]},
            {"type": "roboflow_core/first_non_empty_or_default@v1", "name": "crowd_size",
             "data": ["$steps.count.output"], "default": 0},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "counted", "selector": "$steps.count.output"},
                    {"type": "JsonField", "name": "crowd_size", "selector": "$steps.crowd_size.output"}],
    }


def crowd_message() -> dict[str, Any]:
    """Count people; an expression names the level ("crowded" from ``crowd`` people, else "quiet");
    switch_case runs that level's string_template ("{status}: {count} people at {time}", the time from
    current_time in ``timezone``); first_non_empty_or_default gives the message of whichever branch ran."""
    at_least_crowd = {"type": "StatementGroup", "statements": [{
        "type": "BinaryStatement", "left_operand": {"type": "DynamicOperand", "operand_name": "count"},
        "comparator": {"type": "(Number) >="}, "right_operand": {"type": "DynamicOperand", "operand_name": "crowd"}}]}
    message_data = {"status": "$steps.level.output", "count": "$steps.count.output", "time": "$steps.now.time"}
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "crowd", "default_value": 5},
                   {"type": "WorkflowParameter", "name": "timezone", "default_value": "Europe/Berlin"}],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/property_definition@v1", "name": "count", "data": "$steps.model.predictions",
             "operations": [{"type": "SequenceLength"}]},
            {"type": "roboflow_core/expression@v1", "name": "level",
             "data": {"count": "$steps.count.output", "crowd": "$inputs.crowd"},
             "switch": {"type": "CasesDefinition", "cases": [{
                 "type": "CaseDefinition", "condition": at_least_crowd,
                 "result": {"type": "StaticCaseResult", "value": "crowded"}}],
                 "default": {"type": "StaticCaseResult", "value": "quiet"}}},
            {"type": "roboflow_core/current_time@v1", "name": "now", "timezone": "$inputs.timezone"},
            {"type": "roboflow_core/switch_case@v1", "name": "route", "value": "$steps.level.output",
             "cases": {"crowded": "$steps.alert"}, "default_next_steps": ["$steps.note"]},
            {"type": "roboflow_core/string_template@v1", "name": "alert",
             "template": "{status}: {count} people at {time}", "data": message_data,
             "data_operations": {"status": [{"type": "StringToUpperCase"}]}},
            {"type": "roboflow_core/string_template@v1", "name": "note",
             "template": "{status}: {count} people at {time}", "data": message_data},
            {"type": "roboflow_core/first_non_empty_or_default@v1", "name": "message",
             "data": ["$steps.alert.output", "$steps.note.output"]},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "alert", "selector": "$steps.alert.output"},
                    {"type": "JsonField", "name": "note", "selector": "$steps.note.output"},
                    {"type": "JsonField", "name": "message", "selector": "$steps.message.output"},
                    {"type": "JsonField", "name": "now", "selector": "$steps.now.iso_string"}],
    }


def colours_read_and_people_rolled_up() -> dict[str, Any]:
    """Detect people -> crop each one -> classify each crop's colour and detect people again on each crop (the
    320 model: a crop is small). Each person takes its crop's colour as its class (detections_classes_replacement),
    and the colours are read as one text: left to right (stitch_ocr_detections v1, one line at tolerance 2000), right
    to left (v2's collimation). The crops' people are rolled up into the frame (detections_list_rollup; boxes of IoU
    0.5 or more merged)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
             "predictions": "$steps.model.predictions"},
            {"type": "roboflow_core/roboflow_classification_model@v2", "name": "colour",
             "images": "$steps.crops.crops", "model_id": CLASSIFIER},
            {"type": "roboflow_core/detections_classes_replacement@v1", "name": "coloured",
             "object_detection_predictions": "$steps.model.predictions",
             "classification_predictions": "$steps.colour.predictions"},
            {"type": "roboflow_core/stitch_ocr_detections@v1", "name": "left_to_right",
             "predictions": "$steps.coloured.predictions", "reading_direction": "left_to_right", "tolerance": 2000,
             "delimiter": " "},
            {"type": "roboflow_core/stitch_ocr_detections@v2", "name": "right_to_left",
             "predictions": "$steps.coloured.predictions", "stitching_algorithm": "collimate",
             "reading_direction": "right_to_left", "collimate_tolerance": 1000, "delimiter": " "},
            detect("on_crops", SMALL_MODEL, images="$steps.crops.crops", confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/dimension_collapse@v1", "name": "collapse", "data": "$steps.on_crops.predictions"},
            {"type": "roboflow_core/detections_list_rollup@v1", "name": "rollup",
             "parent_detection": "$steps.model.predictions", "child_detections": "$steps.collapse.output",
             "overlap_threshold": 0.5},
        ],
        "outputs": [{"type": "JsonField", "name": "coloured", "selector": "$steps.coloured.predictions"},
                    {"type": "JsonField", "name": "left_to_right", "selector": "$steps.left_to_right.ocr_text"},
                    {"type": "JsonField", "name": "right_to_left", "selector": "$steps.right_to_left.ocr_text"},
                    {"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "on_crops", "selector": "$steps.on_crops.predictions"},
                    {"type": "JsonField", "name": "rolled_up", "selector": "$steps.rollup.rolled_up_detections"},
                    {"type": "JsonField", "name": "zones", "selector": "$steps.rollup.crop_zones"}],
    }


def deskewed(degrees: int) -> dict[str, Any]:
    """Each frame turned ``degrees`` (image_preprocessing), then auto_rotate_on_edges on it and on the frame itself
    (vtest's dominant edges are horizontal: the floor, the walls' tops)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            {"type": "roboflow_core/image_preprocessing@v1", "name": "turned", "image": "$inputs.image",
             "task_type": "rotate", "rotation_degrees": degrees},
            {"type": "roboflow_core/auto_rotate_on_edges@v1", "name": "deskewed", "image": "$steps.turned.image",
             "target_orientation": "horizontal"},
            {"type": "roboflow_core/auto_rotate_on_edges@v1", "name": "frame_deskewed", "image": "$inputs.image",
             "target_orientation": "horizontal"},
        ],
        "outputs": [{"type": "JsonField", "name": "angle", "selector": "$steps.deskewed.angle"},
                    {"type": "JsonField", "name": "image", "selector": "$steps.deskewed.image"},
                    {"type": "JsonField", "name": "frame_angle", "selector": "$steps.frame_deskewed.angle"}],
    }


def plate_reading(text_detection: str = "small") -> dict[str, Any]:
    """PP-OCR on the frame: its text and one prediction per text box (the box's text as its class)."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [{"type": "roboflow_core/pp_ocr@v1", "name": "ocr", "images": "$inputs.image",
                   "text_detection": text_detection, "text_recognition": "small"}],
        "outputs": [{"type": "JsonField", "name": "text", "selector": "$steps.ocr.result"},
                    {"type": "JsonField", "name": "predictions", "selector": "$steps.ocr.predictions"}],
    }


def google_vision_text() -> dict[str, Any]:
    """Google Cloud Vision's OCR on the frame (its key the ``api_key`` parameter), its text blocks boxed and labelled
    as the reference's gallery example does, and read left to right as one line by stitch_ocr_detections."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "api_key"}],
        "steps": [
            {"type": "roboflow_core/google_vision_ocr@v1", "name": "google_vision_ocr", "image": "$inputs.image",
             "ocr_type": "text_detection", "api_key": "$inputs.api_key", "language_hints": ["en"]},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "bounding_box_visualization",
             "predictions": "$steps.google_vision_ocr.predictions", "image": "$inputs.image"},
            {"type": "roboflow_core/label_visualization@v1", "name": "label_visualization",
             "predictions": "$steps.google_vision_ocr.predictions", "image": "$steps.bounding_box_visualization.image"},
            {"type": "roboflow_core/stitch_ocr_detections@v1", "name": "line",
             "predictions": "$steps.google_vision_ocr.predictions", "reading_direction": "left_to_right",
             "delimiter": " "},
        ],
        "outputs": [
            {"type": "JsonField", "name": "extracted_text", "selector": "$steps.google_vision_ocr.text"},
            {"type": "JsonField", "name": "language", "selector": "$steps.google_vision_ocr.language"},
            {"type": "JsonField", "name": "text_detections", "selector": "$steps.google_vision_ocr.predictions"},
            {"type": "JsonField", "name": "line", "selector": "$steps.line.ocr_text"},
            {"type": "JsonField", "name": "text_visualised", "selector": "$steps.label_visualization.image"},
        ],
    }


def people_tracker_as_inner_workflow() -> dict[str, Any]:
    """A saved "people tracker" workflow pasted whole into another as an inner_workflow (its image input bound to
    the frame, its confidence to 0.6, its class filter left at its default) and drawn by the parent; beside it the
    same steps written out flat, on the same frames."""
    tracker = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "picture"},
                   {"type": "WorkflowParameter", "name": "confidence", "default_value": 0.4},
                   {"type": "WorkflowParameter", "name": "classes", "default_value": ["person"]}],
        "steps": [
            {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "model",
             "images": "$inputs.picture", "model_id": MODEL, "confidence": "$inputs.confidence",
             "class_filter": "$inputs.classes"},
            {"type": "roboflow_core/byte_tracker@v3", "name": "tracker", "image": "$inputs.picture",
             "detections": "$steps.model.predictions"},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.tracker.tracked_detections"}],
    }
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            {"type": "roboflow_core/inner_workflow@v1", "name": "people_tracker", "workflow_definition": tracker,
             "parameter_bindings": {"picture": "$inputs.image", "confidence": 0.6}},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.people_tracker.people"},
            detect("flat_model", confidence=0.6, class_filter=["person"]),
            {"type": "roboflow_core/byte_tracker@v3", "name": "flat_tracker", "image": "$inputs.image",
             "detections": "$steps.flat_model.predictions"},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.people_tracker.people"},
                    {"type": "JsonField", "name": "drawn", "selector": "$steps.boxes.image"},
                    {"type": "JsonField", "name": "flat", "selector": "$steps.flat_tracker.tracked_detections"}],
    }


def failing_step() -> dict[str, Any]:
    """A line counter fed untracked detections: fails on every frame with people, the rest still runs."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3),
            {"type": "roboflow_core/line_counter@v2", "name": "broken", "image": "$inputs.image",
             "detections": "$steps.model.predictions", "line_segment": [[0, 300], [768, 300]]},
        ],
        "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "count_in", "selector": "$steps.broken.count_in"}],
    }


def colour_tags(confidence: float = 0.5) -> dict[str, Any]:
    """Which of red, green and blue each detected person's crop has (a multi-label model per crop) and the frame
    has (v3, a custom threshold); each person takes its crop's most confident tag as its class."""
    return {
        "version": "1.0",
        "inputs": [IMAGE],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/dynamic_crop@v1", "name": "crops", "images": "$inputs.image",
             "predictions": "$steps.model.predictions"},
            {"type": "roboflow_core/roboflow_multi_label_classification_model@v2", "name": "tags",
             "images": "$steps.crops.crops", "model_id": MULTI_LABEL, "confidence": confidence},
            {"type": "roboflow_core/roboflow_multi_label_classification_model@v3", "name": "frame_tags",
             "images": "$inputs.image", "model_id": MULTI_LABEL, "confidence_mode": "custom",
             "custom_confidence": confidence},
            {"type": "roboflow_core/detections_classes_replacement@v1", "name": "tagged",
             "object_detection_predictions": "$steps.model.predictions",
             "classification_predictions": "$steps.tags.predictions"},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.model.predictions"},
                    {"type": "JsonField", "name": "tags", "selector": "$steps.tags.predictions"},
                    {"type": "JsonField", "name": "frame_tags", "selector": "$steps.frame_tags.predictions"},
                    {"type": "JsonField", "name": "tagged", "selector": "$steps.tagged.predictions"}],
    }


def vlm_answers_parsed() -> dict[str, Any]:
    """A VLM's answers (workflow parameters here: no VLM block runs) parsed as Gemini's detections, the confident
    ones kept and boxed, and as a multi-label classification whose tags are read out."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "answer"},
                   {"type": "WorkflowParameter", "name": "tags", "default_value": ""}],
        "steps": [
            {"type": "roboflow_core/vlm_as_detector@v2", "name": "parsed", "image": "$inputs.image",
             "vlm_output": "$inputs.answer", "classes": ["person", "bag"], "model_type": "google-gemini",
             "task_type": "object-detection"},
            {"type": "roboflow_core/detections_filter@v1", "name": "confident",
             "predictions": "$steps.parsed.predictions",
             "operations": [{"type": "DetectionsFilter", "filter_operation": {
                 "type": "StatementGroup", "statements": [{
                     "type": "BinaryStatement",
                     "left_operand": {"type": "DynamicOperand", "operations": [
                         {"type": "ExtractDetectionProperty", "property_name": "confidence"}]},
                     "comparator": {"type": "(Number) >="},
                     "right_operand": {"type": "StaticOperand", "value": 0.5}}]}}]},
            {"type": "roboflow_core/bounding_box_visualization@v1", "name": "boxes", "image": "$inputs.image",
             "predictions": "$steps.confident.predictions", "color_palette": "CUSTOM", "custom_colors": ["#00FF00"],
             "thickness": 4},
            {"type": "roboflow_core/vlm_as_classifier@v2", "name": "scene", "image": "$inputs.image",
             "vlm_output": "$inputs.tags", "classes": ["crowded", "empty", "night"]},
            {"type": "roboflow_core/property_definition@v1", "name": "scene_tags", "data": "$steps.scene.predictions",
             "operations": [{"type": "ClassificationPropertyExtract", "property_name": "top_class"}]},
        ],
        "outputs": [{"type": "JsonField", "name": "parsed", "selector": "$steps.parsed.predictions"},
                    {"type": "JsonField", "name": "error_status", "selector": "$steps.parsed.error_status"},
                    {"type": "JsonField", "name": "confident", "selector": "$steps.confident.predictions"},
                    {"type": "JsonField", "name": "annotated", "selector": "$steps.boxes.image"},
                    {"type": "JsonField", "name": "scene", "selector": "$steps.scene.predictions"},
                    {"type": "JsonField", "name": "scene_tags", "selector": "$steps.scene_tags.output"}],
    }


def areas_places_and_frames() -> dict[str, Any]:
    """No model but the detector: each person's area (their box: px², and m² at 50 px per metre), where each
    stands on the ground under a drone camera 30 m up facing east (its position from parameters), and this
    source's last 3 frames at half size as JPEGs."""
    return {
        "version": "1.0",
        "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "latitude", "default_value": 47.428681},
                   {"type": "WorkflowParameter", "name": "longitude", "default_value": -105.279125}],
        "steps": [
            detect(confidence=0.3, class_filter=["person"]),
            {"type": "roboflow_core/mask_area_measurement@v1", "name": "areas",
             "predictions": "$steps.model.predictions", "pixels_per_unit": 50},
            {"type": "roboflow_core/geotag_detection@v1", "name": "geotag", "image": "$inputs.image",
             "predictions": "$steps.areas.predictions", "latitude": "$inputs.latitude",
             "longitude": "$inputs.longitude", "altitude": 30, "heading": 90},
            {"type": "roboflow_core/image_stack@v1", "name": "stack", "image": "$inputs.image", "stack_size": 3,
             "resolution_width": 384},
        ],
        "outputs": [{"type": "JsonField", "name": "people", "selector": "$steps.areas.predictions"},
                    {"type": "JsonField", "name": "places", "selector": "$steps.geotag.geo_detections"},
                    {"type": "JsonField", "name": "geojson", "selector": "$steps.geotag.geojson"},
                    {"type": "JsonField", "name": "frames", "selector": "$steps.stack.frames"},
                    {"type": "JsonField", "name": "frames_count", "selector": "$steps.stack.frames_count"}],
    }


def init(video: str, workflow: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    return workflow_init({"video_reference": video}, workflow, {"results_buffer_size": 5000}, parameters)
