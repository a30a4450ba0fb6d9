// SluiceBroker: placeholder until the layer lands.
