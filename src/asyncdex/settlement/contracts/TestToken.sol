// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Test collateral token for tests and the demo
/// @notice A minimal ERC-20 with 6 decimals, like USDC, so amounts in the engine's 10^-6 units
///         map one to one onto token base units. Never deploy it as real collateral.
/// @dev Invariants: the sum of balances equals totalSupply; only mint creates tokens.
///      With `openMint` anyone may mint (demo faucets, fuzzing); otherwise only the deployer.
contract TestToken {
    string public name;
    string public symbol;
    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    address public immutable owner;
    bool public immutable openMint;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 amount);
    event Approval(address indexed owner, address indexed spender, uint256 amount);

    error NotMinter(address caller);
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);
    error ZeroAddress();

    constructor(string memory name_, string memory symbol_, bool openMint_) {
        name = name_;
        symbol = symbol_;
        owner = msg.sender;
        openMint = openMint_;
    }

    function mint(address to, uint256 amount) external {
        if (!openMint && msg.sender != owner) revert NotMinter(msg.sender);
        if (to == address(0)) revert ZeroAddress();
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    /// @dev An allowance of type(uint256).max is treated as unlimited and never decreases,
    ///      as in common ERC-20 implementations, so approve-once flows behave as on mainnet.
    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < amount) revert InsufficientAllowance(from, msg.sender, allowed, amount);
            allowance[from][msg.sender] = allowed - amount;
        }
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) private {
        if (to == address(0)) revert ZeroAddress();
        uint256 balance = balanceOf[from];
        if (balance < amount) revert InsufficientBalance(from, balance, amount);
        balanceOf[from] = balance - amount;
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
