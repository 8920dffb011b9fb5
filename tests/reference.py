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
