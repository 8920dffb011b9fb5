"""Reference figures for EfficientNet that effdsl must reproduce; the tests compare against them.

Where they come from:

- width, depth, resolution and dropout of b0..b7: the variant table of the reference
  implementations (TensorFlow ``efficientnet_builder.efficientnet_params``, torchvision
  ``models/efficientnet.py``, timm ``_gen_efficientnet``);
- parameter counts: ``sum(p.numel() for p in model.parameters())`` of
  ``torchvision.models.efficientnet_b0()`` .. ``efficientnet_b7()`` (torchvision 0.29, 1000
  classes); timm 1.0's ``efficientnet_b0`` .. ``b7`` give the same numbers;
- MACs: ``torch.utils.flop_counter.FlopCounterMode``'s total for one image at the
  variant's resolution, divided by 2 (it counts conv and linear layers, 2 FLOPs per
  multiply-add), on the same torchvision models; the paper's "FLOPs" (0.39B for B0) are
  these MACs;
- the B0 stage table: Table 1 of Tan & Le, "EfficientNet: Rethinking Model Scaling for
  Convolutional Neural Networks", ICML 2019 (arXiv:1905.11946);
- the state_dict size: ``len(torchvision.models.efficientnet_b0().state_dict())``;
- phi = 1: width 1.1 and depth 1.2 are B2's, so its parameter count is B2's.
"""

# preset: (width, depth, resolution, dropout, params, MACs at resolution)
EFFICIENTNET = {
    "b0": (1.0, 1.0, 224, 0.2, 5_288_548, 385_814_752),
    "b1": (1.0, 1.1, 240, 0.2, 7_794_184, 686_802_832),
    "b2": (1.1, 1.2, 260, 0.3, 9_109_994, 993_561_872),
    "b3": (1.2, 1.4, 300, 0.3, 12_233_232, 1_827_141_392),
    "b4": (1.4, 1.8, 380, 0.4, 19_341_616, 4_393_771_024),
    "b5": (1.6, 2.2, 456, 0.4, 30_389_784, 10_266_384_752),
    "b6": (1.8, 2.6, 528, 0.5, 43_040_704, 19_067_593_536),
    "b7": (2.0, 3.1, 600, 0.5, 66_347_960, 37_745_884_192),
}

# B0 stage table: (kernel, stride, expand, out_ch, repeats)
B0_STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]

B0_STATE_DICT_TENSORS = 360  # counting batch-norm buffers
PHI1_PARAMS = 9_109_994  # phi = 1 equals B2 in width and depth

# The built-in models by their reference names: (library, params, MACs at resolution, resolution).
# Params: sum(p.numel()) of torchvision 0.29's / timm 1.0.31's model (1000 classes); MACs:
# FlopCounterMode's total / 2 for one image at the model's evaluation resolution (torchvision's
# transforms, timm's pretrained_cfg: test_input_size where given, else input_size).
# timm's efficientnet_b0..b7 have torchvision's numbers (above); b5..b7 differ in batch-norm eps only.
MODELS = {
    **{f"efficientnet_b{i}": ("torchvision", row[4], row[5], row[2])
       for i, row in enumerate(EFFICIENTNET[f"b{j}"] for j in range(8))},
    "efficientnet_b8": ("timm", 87_413_142, 62_597_461_568, 672),
    **{f"tf_efficientnet_b{i}": ("timm", row[4], row[5], row[2])
       for i, row in enumerate(EFFICIENTNET[f"b{j}"] for j in range(8))},
    "tf_efficientnet_b8": ("timm", 87_413_142, 62_597_461_568, 672),
    "efficientnet_lite0": ("timm", 4_652_008, 385_187_552, 224),
    "efficientnet_lite1": ("timm", 5_416_680, 600_185_232, 240),
    "efficientnet_lite2": ("timm", 6_092_072, 859_736_272, 260),
    "efficientnet_lite3": ("timm", 8_197_096, 1_607_554_544, 300),
    "efficientnet_lite4": ("timm", 13_006_568, 3_943_564_112, 380),
    "efficientnet_v2_s": ("torchvision", 21_458_488, 8_365_617_152, 384),
    "efficientnet_v2_m": ("torchvision", 54_139_356, 24_582_460_384, 480),
    "efficientnet_v2_l": ("torchvision", 118_515_272, 56_079_699_008, 480),
    "tf_efficientnetv2_s": ("timm", 21_458_488, 8_365_617_152, 384),
    "efficientnet_es": ("timm", 5_438_392, 1_788_731_008, 224),
    "efficientnet_em": ("timm", 6_899_496, 3_013_321_088, 240),
    "efficientnet_el": ("timm", 10_589_712, 7_936_082_848, 300),
    "mnasnet0_5": ("torchvision", 2_218_512, 104_455_968, 224),
    "mnasnet0_75": ("torchvision", 3_170_208, 215_493_104, 224),
    "mnasnet1_0": ("torchvision", 4_383_312, 314_415_872, 224),
    "mnasnet1_3": ("torchvision", 6_282_256, 526_362_432, 224),
    "mnasnet_100": ("timm", 4_383_312, 314_415_872, 224),
    "mobilenet_v2": ("torchvision", 3_504_872, 300_774_272, 224),
    "mobilenet_v3_large": ("torchvision", 5_483_032, 216_589_760, 224),
    "mobilenet_v3_small": ("torchvision", 2_542_856, 56_510_400, 224),
    "mobilenetv2_035": ("timm", 1_677_128, 59_285_808, 224),
    "mobilenetv2_050": ("timm", 1_968_680, 97_131_840, 224),
    "mobilenetv2_075": ("timm", 2_636_424, 209_069_792, 224),
    "mobilenetv2_100": ("timm", 3_504_872, 300_774_272, 224),
    "mobilenetv2_140": ("timm", 6_108_776, 582_195_824, 224),
}
