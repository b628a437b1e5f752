"""Word lists the families build prompts from: single words and topics of ten words each
(``word_count`` and ``steer`` answers draw from the topics a prompt names)."""

WORDS = ("apple", "river", "stone", "cloud", "tiger", "green", "light", "music", "paper", "house", "bread",
          "chair", "dream", "earth", "flame", "glass", "horse", "juice", "knife", "lemon", "money", "night",
          "ocean", "plant", "queen", "radio", "snake", "table", "uncle", "voice", "water", "youth", "zebra",
          "storm", "sugar", "train", "wheel", "smile", "tower", "beach", "cabin", "candy", "coast", "crown",
          "dance", "eagle", "fence", "field", "forest", "garden", "honey", "island", "jacket", "kettle",
          "ladder", "market", "needle", "orange", "pencil", "pillow", "rabbit", "saddle", "silver", "spoon",
          "stamp", "sweater", "thread", "ticket", "tomato", "valley", "wagon", "window", "winter", "basket",
          "bottle", "bridge", "button", "carpet", "castle", "doctor")
# Topic -> ten words about it (word_count references draw from the topics a prompt names).
TOPICS: dict[str, tuple[str, ...]] = {
    "colors": ("red", "blue", "green", "yellow", "black", "white", "pink", "gray", "brown", "purple"),
    "animals": ("cat", "dog", "horse", "bird", "fish", "cow", "lion", "goat", "wolf", "bear"),
    "fruit": ("apple", "pear", "plum", "grape", "lemon", "lime", "peach", "mango", "melon", "cherry"),
    "weather": ("rain", "snow", "wind", "sun", "fog", "storm", "hail", "cloud", "frost", "heat"),
    "food": ("bread", "rice", "soup", "cheese", "egg", "salt", "milk", "pasta", "bean", "cake"),
    "music": ("song", "drum", "piano", "bass", "note", "choir", "tune", "flute", "violin", "beat"),
    "school": ("book", "pen", "desk", "class", "test", "chalk", "bell", "lesson", "grade", "ruler"),
    "sea": ("wave", "ship", "sand", "salt", "tide", "shell", "reef", "coral", "whale", "port"),
    "city": ("street", "bus", "park", "tower", "shop", "bank", "bridge", "square", "metro", "cafe"),
    "sport": ("ball", "goal", "team", "race", "score", "coach", "match", "net", "bat", "court"),
    "kitchen": ("pot", "pan", "knife", "spoon", "fork", "oven", "sink", "plate", "bowl", "cup"),
    "garden": ("rose", "tree", "grass", "seed", "soil", "leaf", "root", "bush", "hose", "rake"),
    "body": ("hand", "foot", "head", "arm", "leg", "eye", "ear", "nose", "knee", "back"),
    "travel": ("map", "bag", "road", "train", "plane", "hotel", "ticket", "tour", "trip", "guide"),
    "house": ("door", "roof", "wall", "floor", "room", "stair", "lamp", "bed", "sofa", "shelf"),
    "tools": ("hammer", "saw", "drill", "nail", "screw", "wrench", "tape", "glue", "level", "file"),
    "space": ("star", "moon", "planet", "comet", "orbit", "rocket", "galaxy", "sky", "mars", "venus"),
    "farm": ("barn", "tractor", "hay", "sheep", "pig", "hen", "field", "fence", "crop", "wheat"),
    "clothes": ("shirt", "coat", "hat", "sock", "shoe", "scarf", "dress", "belt", "glove", "boot"),
    "office": ("memo", "chair", "phone", "email", "file", "desk", "clip", "stamp", "folder", "badge"),
    "forest": ("oak", "pine", "moss", "fern", "deer", "owl", "trail", "log", "cone", "bark"),
    "river": ("bank", "boat", "fish", "stream", "delta", "dam", "mill", "ford", "reed", "rapid"),
    "games": ("card", "dice", "chess", "puzzle", "board", "token", "pawn", "queen", "king", "round"),
    "light": ("lamp", "candle", "torch", "beam", "glow", "flash", "spark", "shade", "ray", "bulb"),
}
