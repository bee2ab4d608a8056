// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title asyncdex settlement contract
/// @notice Holds the venue's collateral and the chain of engine state roots. Users keep custody:
///         they withdraw with Merkle proofs against final batches, can push requests past the
///         operator through the L1 message queue, and exit with their balance if the operator
///         ignores a forced request past its deadline.
/// @dev Invariants:
///      - Batches form one chain: batch n+1 names batch n's state root as its previous root, each
///        number is committed once, and every batch passes `_authorizeBatch`: the sequencer's
///        EIP-712 signature here, a members' quorum certificate in CommitteeSettlement.
///      - The L1 message queue only grows; a batch's `l1MessagesConsumed` never decreases and never
///        exceeds the queue. Forced requests get deadline = block of posting + forcedDeadlineBlocks,
///        so their deadlines never decrease along the queue.
///      - No batch may leave a forced request behind once its deadline has passed; if the operator
///        does anyway, anyone can freeze the contract. Freezing pins the exit batch to the last
///        batch that was final at that moment; later batches never become final.
///      - `totalPaid <= totalDeposited` always: every payout is bounded by what is left.
///      - Every payout marks its claim as spent before the token transfer (checks-effects-
///        interactions), so a re-entrant token cannot be paid twice for one claim.
///      - Merkle proofs are the scheme of `asyncdex/settlement/merkle.py`: positional binary tree,
///        keccak256(left || right), zero-padded to a power of two, siblings bottom-up, the index
///        bit at each level saying whether the sibling sits on the left (1) or the right (0).
contract Settlement {
    // ---------------------------------------------------------------- types and constants

    /// @notice Kinds of L1 messages. Deposits credit the engine; forced requests must be
    ///         processed by the sequencer before their deadline.
    uint8 public constant KIND_DEPOSIT = 0;
    uint8 public constant KIND_FORCED_WITHDRAWAL = 1;
    uint8 public constant KIND_FORCED_CANCEL_ALL = 2;

    /// @dev EIP-712, so the sequencer's key can live in any standard signer (HSM, KMS, wallet)
    ///      and the signed fields are readable to a human inspecting the request.
    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant NAME_HASH = keccak256("asyncdex Settlement");
    bytes32 private constant VERSION_HASH = keccak256("1");
    bytes32 public constant BATCH_TYPEHASH = keccak256(
        "Batch(uint256 batchNumber,bytes32 prevStateRoot,bytes32 newStateRoot,"
        "bytes32 withdrawalsRoot,uint256 l1MessagesConsumed,bytes32 batchDataHash)"
    );

    /// @dev Upper half of the secp256k1 order: signatures with s above it are the malleable twin
    ///      of a valid one (EIP-2) and are refused so a signature has exactly one encoding.
    uint256 internal constant SECP256K1_HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    struct BatchRecord {
        bytes32 stateRoot;
        bytes32 withdrawalsRoot;
        uint64 committedAtBlock;
        uint64 l1MessagesConsumed;
    }

    // ---------------------------------------------------------------- configuration

    IERC20 public immutable token;
    address public immutable sequencer;
    uint256 public immutable finalityBlocks;
    uint256 public immutable forcedDeadlineBlocks;

    // ---------------------------------------------------------------- state

    /// @notice Batch 0 is the genesis state, committed by the constructor.
    mapping(uint256 => BatchRecord) public batches;
    uint256 public lastBatchNumber;

    /// @notice keccak256(abi.encode(index, kind, account, amount, blockNumber, deadline)) per L1
    ///         message; stored so a message can be proven later (deposit reclaim, fraud proofs)
    ///         without trusting an event log.
    bytes32[] public l1MessageHashes;
    /// @notice Deadline of each forced request by L1 message index; 0 for deposits.
    mapping(uint256 => uint256) public forcedDeadline;
    /// @dev L1 message indexes of forced requests in queue order, and the position of the first
    ///      one not yet consumed by a batch: commitBatch checks deadlines from there in O(1)
    ///      amortised, because deadlines never decrease along the queue.
    uint256[] private forcedQueue;
    uint256 private forcedCursor;

    uint256 public totalDeposited;
    uint256 public totalPaid;

    mapping(uint256 => bool) public withdrawalClaimed;
    mapping(address => bool) public exited;
    mapping(uint256 => bool) public depositReclaimed;

    bool public frozen;
    /// @notice The batch whose state root exits are proven against; set by freeze().
    uint256 public exitBatchNumber;

    // ---------------------------------------------------------------- events

    event L1Message(
        uint256 indexed index,
        uint8 indexed kind,
        address indexed account,
        uint256 amount,
        uint256 blockNumber,
        uint256 deadline
    );
    event BatchCommitted(
        uint256 indexed batchNumber,
        bytes32 stateRoot,
        bytes32 withdrawalsRoot,
        uint256 l1MessagesConsumed,
        bytes32 batchDataHash
    );
    event WithdrawalClaimed(
        uint256 indexed batchNumber,
        uint256 indexed withdrawalId,
        address indexed account,
        uint256 amount
    );
    event Frozen(uint256 indexed forcedMessageIndex, uint256 exitBatchNumber);
    event Exited(address indexed account, uint256 exitValue, uint256 paid);
    event DepositReclaimed(uint256 indexed messageIndex, address indexed account, uint256 paid);

    // ---------------------------------------------------------------- errors

    error ZeroAddress();
    error ZeroAmount();
    error InvalidRequest(uint8 kind, uint256 amount);
    error ContractFrozen();
    error NotFrozen();
    error UnexpectedBatchNumber(uint256 expected, uint256 got);
    error PrevStateRootMismatch(bytes32 expected, bytes32 got);
    error BatchDataHashMismatch(bytes32 declared, bytes32 actual);
    error InvalidSignature();
    error L1MessagesConsumedOutOfRange(uint256 previous, uint256 got, uint256 queueLength);
    error ForcedRequestOverdue(uint256 messageIndex, uint256 deadline);
    error BatchNotFinal(uint256 batchNumber);
    error WithdrawalAlreadyClaimed(uint256 withdrawalId);
    error InvalidProof();
    error InsufficientFunds(uint256 requested, uint256 available);
    error NotForcedRequest(uint256 messageIndex);
    error DeadlineNotPassed(uint256 messageIndex, uint256 deadline);
    error ForcedRequestProcessed(uint256 messageIndex);
    error AlreadyExited(address account);
    error NotReclaimable(uint256 messageIndex);
    error MessageMismatch(uint256 messageIndex);
    error TokenTransferFailed();

    // ---------------------------------------------------------------- construction

    constructor(
        IERC20 token_,
        address sequencer_,
        uint256 finalityBlocks_,
        uint256 forcedDeadlineBlocks_,
        bytes32 genesisStateRoot
    ) {
        if (address(token_) == address(0) || sequencer_ == address(0)) revert ZeroAddress();
        token = token_;
        sequencer = sequencer_;
        finalityBlocks = finalityBlocks_;
        forcedDeadlineBlocks = forcedDeadlineBlocks_;
        batches[0] = BatchRecord(genesisStateRoot, bytes32(0), uint64(block.number), 0);
        emit BatchCommitted(0, genesisStateRoot, bytes32(0), 0, bytes32(0));
    }

    // ---------------------------------------------------------------- L1 message queue

    /// @notice Deposit `amount` token base units for the caller.
    function deposit(uint256 amount) external {
        depositFor(msg.sender, amount);
    }

    /// @notice Deposit `amount` from the caller, credited to `account` in the engine.
    function depositFor(address account, uint256 amount) public {
        if (frozen) revert ContractFrozen();
        if (account == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        totalDeposited += amount;
        _appendMessage(KIND_DEPOSIT, account, amount, 0);
        _safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Post a request the sequencer must process within forcedDeadlineBlocks blocks:
    ///         a withdrawal of `amount` (> 0) or a cancel-all (`amount` 0) for the caller.
    /// @dev The engine decides the outcome (a withdrawal may be rejected for margin); the
    ///      contract only guarantees the request is consumed in time.
    function forceRequest(uint8 kind, uint256 amount) external returns (uint256 index) {
        if (frozen) revert ContractFrozen();
        bool validWithdrawal = kind == KIND_FORCED_WITHDRAWAL && amount > 0;
        bool validCancelAll = kind == KIND_FORCED_CANCEL_ALL && amount == 0;
        if (!validWithdrawal && !validCancelAll) revert InvalidRequest(kind, amount);
        uint256 deadline = block.number + forcedDeadlineBlocks;
        index = _appendMessage(kind, msg.sender, amount, deadline);
        forcedDeadline[index] = deadline;
        forcedQueue.push(index);
    }

    function l1MessageCount() external view returns (uint256) {
        return l1MessageHashes.length;
    }

    // ---------------------------------------------------------------- batches

    /// @notice Append batch `batchNumber` moving the state from `prevStateRoot` to
    ///         `newStateRoot`, signed by the sequencer.
    /// @param l1MessagesConsumed the total number of L1 messages processed up to this batch.
    /// @param batchData the batch's compressed intents, posted so anyone can replay the engine;
    ///        only its hash is kept, the bytes stay in calldata history.
    function commitBatch(
        uint256 batchNumber,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        bytes32 withdrawalsRoot,
        uint256 l1MessagesConsumed,
        bytes calldata batchData,
        bytes32 batchDataHash,
        bytes calldata signature
    ) external {
        if (frozen) revert ContractFrozen();
        uint256 previousConsumed = _checkChainLink(batchNumber, prevStateRoot);
        _checkBatchData(batchData, batchDataHash);
        bytes32 digest = batchDigest(
            batchNumber,
            prevStateRoot,
            newStateRoot,
            withdrawalsRoot,
            l1MessagesConsumed,
            batchDataHash
        );
        _authorizeBatch(digest, signature);
        _checkL1MessagesConsumed(previousConsumed, l1MessagesConsumed);

        lastBatchNumber = batchNumber;
        batches[batchNumber] = BatchRecord(
            newStateRoot,
            withdrawalsRoot,
            uint64(block.number),
            uint64(l1MessagesConsumed)
        );
        emit BatchCommitted(
            batchNumber,
            newStateRoot,
            withdrawalsRoot,
            l1MessagesConsumed,
            batchDataHash
        );
    }

    /// @notice The EIP-712 digest the sequencer signs for a batch (see `batch_digest` in
    ///         asyncdex/settlement/chain.py, which must agree).
    function batchDigest(
        uint256 batchNumber,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        bytes32 withdrawalsRoot,
        uint256 l1MessagesConsumed,
        bytes32 batchDataHash
    ) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                BATCH_TYPEHASH,
                batchNumber,
                prevStateRoot,
                newStateRoot,
                withdrawalsRoot,
                l1MessagesConsumed,
                batchDataHash
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @dev Computed per call rather than cached so a chain fork cannot replay signatures made
    ///      for the other chain id.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this))
        );
    }

    // ---------------------------------------------------------------- finality

    /// @notice A batch is final once finalityBlocks blocks have passed since its commit; after
    ///         a freeze only batches up to the exit batch are, or ever become, final.
    function isFinal(uint256 batchNumber) public view returns (bool) {
        if (batchNumber > lastBatchNumber) return false;
        if (frozen) return batchNumber <= exitBatchNumber;
        return block.number >= uint256(batches[batchNumber].committedAtBlock) + finalityBlocks;
    }

    /// @notice The highest final batch number (0, the genesis, at worst).
    /// @dev Binary search: commit blocks never decrease along the batch chain, so finality is
    ///      a prefix of it.
    function lastFinalBatch() public view returns (uint256) {
        if (frozen) return exitBatchNumber;
        uint256 low = 0;
        uint256 high = lastBatchNumber;
        while (low < high) {
            uint256 middle = (low + high + 1) / 2;
            if (isFinal(middle)) low = middle;
            else high = middle - 1;
        }
        return low;
    }

    // ---------------------------------------------------------------- withdrawals

    /// @notice Pay withdrawal `withdrawalId` of a final batch to `account`; anyone may submit it.
    function claimWithdrawal(
        uint256 batchNumber,
        uint256 withdrawalId,
        address account,
        uint256 amount,
        bytes32[] calldata proof,
        uint256 index
    ) external {
        if (!isFinal(batchNumber)) revert BatchNotFinal(batchNumber);
        if (withdrawalClaimed[withdrawalId]) revert WithdrawalAlreadyClaimed(withdrawalId);
        bytes32 leaf = withdrawalLeaf(withdrawalId, account, amount);
        if (!verifyProof(batches[batchNumber].withdrawalsRoot, leaf, index, proof)) {
            revert InvalidProof();
        }
        uint256 available = availableFunds();
        if (amount > available) revert InsufficientFunds(amount, available);

        withdrawalClaimed[withdrawalId] = true;
        totalPaid += amount;
        emit WithdrawalClaimed(batchNumber, withdrawalId, account, amount);
        _safeTransfer(account, amount);
    }

    // ---------------------------------------------------------------- escape hatch

    /// @notice Freeze the contract because forced request `forcedMessageIndex` is past its
    ///         deadline and the last committed batch has not consumed it. Anyone may call.
    function freeze(uint256 forcedMessageIndex) external {
        if (frozen) revert ContractFrozen();
        uint256 deadline = forcedDeadline[forcedMessageIndex];
        if (deadline == 0) revert NotForcedRequest(forcedMessageIndex);
        if (deadline >= block.number) revert DeadlineNotPassed(forcedMessageIndex, deadline);
        if (forcedMessageIndex < batches[lastBatchNumber].l1MessagesConsumed) {
            revert ForcedRequestProcessed(forcedMessageIndex);
        }
        uint256 exitBatch = lastFinalBatch();
        frozen = true;
        exitBatchNumber = exitBatch;
        emit Frozen(forcedMessageIndex, exitBatch);
    }

    /// @notice After a freeze, pay `account` its exit value from the exit batch's state root,
    ///         bounded by what the contract still holds. Each account exits once; anyone may
    ///         submit, the funds go to `account`.
    function exit(
        address account,
        uint256 exitValue,
        bytes32 accountStateHash,
        bytes32[] calldata proof,
        uint256 index
    ) external {
        if (!frozen) revert NotFrozen();
        if (exited[account]) revert AlreadyExited(account);
        bytes32 leaf = exitLeaf(account, exitValue, accountStateHash);
        if (!verifyProof(batches[exitBatchNumber].stateRoot, leaf, index, proof)) {
            revert InvalidProof();
        }
        uint256 paid = _min(exitValue, availableFunds());

        exited[account] = true;
        totalPaid += paid;
        emit Exited(account, exitValue, paid);
        _safeTransfer(account, paid);
    }

    /// @notice After a freeze, return a deposit the exit batch never consumed (so it is in no
    ///         exit value) to the account it was made for.
    /// @dev Without this, a deposit posted shortly before the operator vanished would be in
    ///      neither the exit root nor any withdrawal.
    function reclaimDeposit(
        uint256 messageIndex,
        address account,
        uint256 amount,
        uint256 blockNumber
    ) external {
        if (!frozen) revert NotFrozen();
        if (messageIndex >= l1MessageHashes.length) revert NotReclaimable(messageIndex);
        if (messageIndex < batches[exitBatchNumber].l1MessagesConsumed) {
            revert NotReclaimable(messageIndex);
        }
        if (depositReclaimed[messageIndex]) revert NotReclaimable(messageIndex);
        bytes32 expected = l1MessageHash(messageIndex, KIND_DEPOSIT, account, amount, blockNumber, 0);
        if (l1MessageHashes[messageIndex] != expected) revert MessageMismatch(messageIndex);
        uint256 paid = _min(amount, availableFunds());

        depositReclaimed[messageIndex] = true;
        totalPaid += paid;
        emit DepositReclaimed(messageIndex, account, paid);
        _safeTransfer(account, paid);
    }

    // ---------------------------------------------------------------- encodings (pure)

    /// @notice Leaf of the engine state tree for one account (asyncdex/settlement/leaves.py).
    function exitLeaf(address account, uint256 exitValue, bytes32 accountStateHash)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(account, exitValue, accountStateHash));
    }

    /// @notice Leaf of a batch's withdrawals tree (asyncdex/settlement/leaves.py).
    function withdrawalLeaf(uint256 withdrawalId, address account, uint256 amount)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(withdrawalId, account, amount));
    }

    function l1MessageHash(
        uint256 index,
        uint8 kind,
        address account,
        uint256 amount,
        uint256 blockNumber,
        uint256 deadline
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(index, kind, account, amount, blockNumber, deadline));
    }

    /// @notice True when `leaf` at `index` with sibling path `proof` hashes up to `root`; the
    ///         index must fit in the proof's depth, as in merkle.py's verify_proof.
    function verifyProof(bytes32 root, bytes32 leaf, uint256 index, bytes32[] calldata proof)
        public
        pure
        returns (bool)
    {
        bytes32 node = leaf;
        for (uint256 level = 0; level < proof.length; ++level) {
            node = (index & 1) == 1
                ? keccak256(abi.encodePacked(proof[level], node))
                : keccak256(abi.encodePacked(node, proof[level]));
            index >>= 1;
        }
        return index == 0 && node == root;
    }

    /// @notice Collateral the contract can still pay out: deposits minus everything paid.
    function availableFunds() public view returns (uint256) {
        return totalDeposited - totalPaid;
    }

    // ---------------------------------------------------------------- internals

    function _appendMessage(uint8 kind, address account, uint256 amount, uint256 deadline)
        internal
        returns (uint256 index)
    {
        index = l1MessageHashes.length;
        l1MessageHashes.push(l1MessageHash(index, kind, account, amount, block.number, deadline));
        emit L1Message(index, kind, account, amount, block.number, deadline);
    }

    /// @dev Batch numbers are consecutive and each batch names its predecessor's root, so the
    ///      committed roots form one unbroken chain. Returns the predecessor's consumed count.
    function _checkChainLink(uint256 batchNumber, bytes32 prevStateRoot)
        private
        view
        returns (uint256 previousConsumed)
    {
        uint256 last = lastBatchNumber;
        if (batchNumber != last + 1) revert UnexpectedBatchNumber(last + 1, batchNumber);
        BatchRecord storage previous = batches[last];
        if (prevStateRoot != previous.stateRoot) {
            revert PrevStateRootMismatch(previous.stateRoot, prevStateRoot);
        }
        return previous.l1MessagesConsumed;
    }

    function _checkBatchData(bytes calldata batchData, bytes32 batchDataHash) private pure {
        bytes32 actual = keccak256(batchData);
        if (actual != batchDataHash) revert BatchDataHashMismatch(batchDataHash, actual);
    }

    /// @dev The forced-request rule: every forced request whose deadline has passed must be
    ///      among the first `consumed` messages once this batch lands.
    function _checkL1MessagesConsumed(uint256 previous, uint256 consumed) private {
        uint256 queueLength = l1MessageHashes.length;
        if (consumed < previous || consumed > queueLength) {
            revert L1MessagesConsumedOutOfRange(previous, consumed, queueLength);
        }
        uint256 cursor = forcedCursor;
        uint256 forcedCount = forcedQueue.length;
        while (cursor < forcedCount && forcedQueue[cursor] < consumed) ++cursor;
        forcedCursor = cursor;
        if (cursor < forcedCount) {
            uint256 index = forcedQueue[cursor];
            uint256 deadline = forcedDeadline[index];
            if (deadline < block.number) revert ForcedRequestOverdue(index, deadline);
        }
    }

    /// @dev Who may move the state root: here the one sequencer key; CommitteeSettlement
    ///      overrides this with a quorum certificate of its members.
    function _authorizeBatch(bytes32 digest, bytes calldata signature) internal view virtual {
        if (_recover(digest, signature) != sequencer) revert InvalidSignature();
    }

    /// @dev ecrecover with the EIP-2 low-s rule and a strict v, so each batch has one valid
    ///      signature encoding; returns address(0) for anything malformed.
    function _recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > SECP256K1_HALF_ORDER) return address(0);
        if (v != 27 && v != 28) return address(0);
        return ecrecover(digest, v, r, s);
    }

    function _min(uint256 a, uint256 b) private pure returns (uint256) {
        return a < b ? a : b;
    }

    /// @dev Accepts tokens that return nothing as well as those returning true, and refuses
    ///      calls to an address without code (which would "succeed" silently).
    function _safeTransfer(address to, uint256 amount) internal {
        if (amount == 0) return;
        _callToken(abi.encodeCall(IERC20.transfer, (to, amount)));
    }

    function _safeTransferFrom(address from, address to, uint256 amount) internal {
        _callToken(abi.encodeCall(IERC20.transferFrom, (from, to, amount)));
    }

    function _callToken(bytes memory data) private {
        if (address(token).code.length == 0) revert TokenTransferFailed();
        (bool ok, bytes memory returned) = address(token).call(data);
        if (!ok || (returned.length != 0 && !abi.decode(returned, (bool)))) {
            revert TokenTransferFailed();
        }
    }
}

/// @notice The slice of ERC-20 the settlement contract uses.
interface IERC20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address account) external view returns (uint256);
}
