"""The reference's published definitions that use the transformations family (from its integration tests
under roboflow/inference/tests/workflows/integration_tests/execution/), shared by the catalogue and the block tests."""

IMAGE = {"type": "WorkflowImage", "name": "image"}

# The reference's SAHI example
# (roboflow/inference/tests/workflows/integration_tests/execution/test_workflow_with_sahi.py).
SAHI = {
    "version": "1.0.0",
    "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "overlap_filtering_strategy"}],
    "steps": [
        {"type": "roboflow_core/image_slicer@v1", "name": "image_slicer", "image": "$inputs.image"},
        {"type": "roboflow_core/roboflow_object_detection_model@v3", "name": "detection",
         "image": "$steps.image_slicer.slices", "model_id": "yolov8n-640"},
        {"type": "roboflow_core/detections_stitch@v1", "name": "stitch", "reference_image": "$inputs.image",
         "predictions": "$steps.detection.predictions",
         "overlap_filtering_strategy": "$inputs.overlap_filtering_strategy"},
        {"type": "roboflow_core/bounding_box_visualization@v1", "name": "bbox_visualiser",
         "predictions": "$steps.stitch.predictions", "image": "$inputs.image"},
    ],
    "outputs": [
        {"type": "JsonField", "name": "predictions", "selector": "$steps.stitch.predictions",
         "coordinates_system": "own"},
        {"type": "JsonField", "name": "visualisation", "selector": "$steps.bbox_visualiser.image"},
    ],
}

# The reference's ensemble example (test_workflow_with_detections_consensus_block.py).
CONSENSUS = {
    "version": "1.0",
    "inputs": [IMAGE, {"type": "WorkflowParameter", "name": "model_id", "default_value": "yolov8n-640"}],
    "steps": [
        {"type": "RoboflowObjectDetectionModel", "name": "detection_1", "image": "$inputs.image",
         "model_id": "$inputs.model_id", "confidence": 0.3},
        {"type": "RoboflowObjectDetectionModel", "name": "detection_2", "image": "$inputs.image",
         "model_id": "$inputs.model_id", "confidence": 0.83},
        {"type": "DetectionsConsensus", "name": "consensus",
         "predictions_batches": ["$steps.detection_1.predictions", "$steps.detection_2.predictions"],
         "required_votes": 2, "required_objects": {"person": 2}},
    ],
    "outputs": [{"type": "JsonField", "name": "result", "selector": "$steps.consensus.*"}],
}

# The reference's test_workflow_with_stitch_for_dynamic_crop.py (its visualisation left out).
CROP_AND_STITCH = {
    "version": "1.0.0",
    "inputs": [IMAGE],
    "steps": [
        {"type": "roboflow_core/roboflow_object_detection_model@v3", "name": "car_detection",
         "image": "$inputs.image", "model_id": "yolov8n-640", "class_filter": ["car"]},
        {"type": "roboflow_core/dynamic_crop@v1", "name": "cropping", "image": "$inputs.image",
         "predictions": "$steps.car_detection.predictions"},
        {"type": "roboflow_core/roboflow_object_detection_model@v3", "name": "plates_detection",
         "image": "$steps.cropping.crops", "model_id": "vehicle-registration-plates-trudk/2"},
        {"type": "roboflow_core/detections_stitch@v1", "name": "stitch", "reference_image": "$inputs.image",
         "predictions": "$steps.plates_detection.predictions", "overlap_filtering_strategy": "nms"},
        {"type": "DetectionsConsensus", "name": "consensus",
         "predictions_batches": ["$steps.car_detection.predictions", "$steps.stitch.predictions"],
         "required_votes": 1},
    ],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.consensus.predictions"}],
}

# The reference's test_workflow_with_model_running_on_relative_static_crop.py.
RELATIVE_CROP = {
    "version": "1.0",
    "inputs": [IMAGE, *({"type": "WorkflowParameter", "name": name}
                        for name in ("model_id", "x_center", "y_center", "width", "height")),
               {"type": "WorkflowParameter", "name": "confidence", "default_value": 0.7}],
    "steps": [
        {"type": "RelativeStaticCrop", "name": "crop", "image": "$inputs.image", "x_center": "$inputs.x_center",
         "y_center": "$inputs.y_center", "width": "$inputs.width", "height": "$inputs.height"},
        {"type": "RoboflowObjectDetectionModel", "name": "detection", "image": "$steps.crop.crops",
         "model_id": "$inputs.model_id", "confidence": "$inputs.confidence"},
    ],
    "outputs": [{"type": "JsonField", "name": "crop", "selector": "$steps.crop.crops"},
                {"type": "JsonField", "name": "result", "selector": "$steps.detection.*"}],
}


# The two-stage workflow of the reference's gallery (detect, crop each detection, classify each crop, the
# detections take their crops' classes), with this project's models.
TWO_STAGE = {
    "version": "1.0",
    "inputs": [IMAGE],
    "steps": [
        {"type": "roboflow_core/roboflow_object_detection_model@v2", "name": "general_detection",
         "image": "$inputs.image", "model_id": "yolov3-tiny/coco-416", "class_filter": ["person"]},
        {"type": "roboflow_core/dynamic_crop@v1", "name": "cropping", "image": "$inputs.image",
         "predictions": "$steps.general_detection.predictions"},
        {"type": "roboflow_core/roboflow_classification_model@v2", "name": "classifier",
         "images": "$steps.cropping.crops", "model_id": "demo-colours/1"},
        {"type": "roboflow_core/detections_classes_replacement@v1", "name": "classes_replacement",
         "object_detection_predictions": "$steps.general_detection.predictions",
         "classification_predictions": "$steps.classifier.predictions"},
    ],
    "outputs": [{"type": "JsonField", "name": "predictions", "selector": "$steps.classes_replacement.predictions"}],
}
